"""What every command-line program shares: one-line errors (exit status 2) and absl flag parsing
that turns a bad flag into such a line instead of a usage dump or a traceback."""

import sys

from absl import flags


def fail(program, message):
    """Prints `<program>: error: <message>` to stderr and exits with status 2."""
    print(f"{program}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def flags_parser(program):
    """An `app.run(flags_parser=...)` that reports a bad flag through `fail`."""

    def parse(argv):
        try:
            return flags.FLAGS(argv)
        except flags.Error as e:
            fail(program, " ".join(str(e).split()))

    return parse
