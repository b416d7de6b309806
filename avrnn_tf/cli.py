"""What every command-line program shares: `--help`, one-line errors (exit status 2) and absl flag
parsing that turns a bad flag into such a line instead of a usage dump or a traceback.

Every console script ends in `cli.run(main, "avrnn-NAME")`:
  --help      the program's docstring (usage and examples), then its own flags with their meaning
              and default (and, for avrnn-train, every config field); exit 0;
  --helpfull  the same followed by every flag the process defines (absl logging, and TensorFlow's
              when it is loaded); exit 0;
  otherwise   `app.run(main)` with flag errors reported by `fail` (an unknown flag names the
              closest one).
"""

import sys
import textwrap

from absl import app
from absl import flags

from avrnn_tf.config import closest

HELP = ("--help", "-help", "-h", "--helpshort", "-?")
HELP_FULL = ("--helpfull", "-helpfull")
WIDTH = 100  # columns of the help pages


def fail(program, message):
    """Prints `<program>: error: <message>` to stderr and exits with status 2."""
    print(f"{program}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def flags_parser(program, own_flags=()):
    """An `app.run(flags_parser=...)` that reports a bad flag through `fail`; an unknown flag gets
    the closest of the program's own flags (`own_flags`) as a suggestion."""

    def parse(argv):
        try:
            return flags.FLAGS(argv)
        except flags.UnrecognizedFlagError as e:
            guess = closest(e.flagname, own_flags) if own_flags else None
            hint = f" (did you mean --{guess}?)" if guess else ""
            fail(program, f"unknown flag --{e.flagname}{hint}; see {program} --help")
        except flags.Error as e:
            fail(program, " ".join(str(e).split()))

    return parse


def own_flags(module_name):
    """The flags a program's module defined (absl files them under the module's name, or under
    sys.argv[0] when the module runs as __main__)."""
    by_module = flags.FLAGS.flags_by_module_dict()
    keys = {module_name, sys.argv[0]} if module_name == "__main__" else {module_name}
    found = {}
    for key in keys:
        for flag in by_module.get(key, []):
            found[flag.name] = flag
    return [found[name] for name in sorted(found)]


def _flag_line(flag):
    if flag.default is None:
        required = any("must have a value other than None" in getattr(v, "message", "")
                       for v in flag.validators)  # flags.mark_flag_as_required's validator
        value = "=..." + (" (required)" if required else "")
    elif isinstance(flag.default, bool):
        value = f"={str(flag.default).lower()}"
    elif isinstance(flag.default, list):
        value = f"={','.join(map(str, flag.default))}"
    else:
        value = f"={flag.default}"
    meaning = " ".join(flag.help.split())
    choices = getattr(flag.parser, "enum_values", None)
    if choices:  # absl starts an enum's help with "<a|b|c>: "; say it once, at the end.
        meaning = meaning.removeprefix(f"<{'|'.join(choices)}>: ") + f" (one of {', '.join(choices)})"
    return f"  --{flag.name}{value}\n" + textwrap.fill(meaning, WIDTH, initial_indent=" " * 6,
                                                         subsequent_indent=" " * 6)


def help_page(module_name, extra=""):
    """The `--help` page: the module docstring, the program's flags, `extra`, a pointer to
    --helpfull."""
    doc = (sys.modules[module_name].__doc__ or "").strip()
    lines = [doc, "", "Flags:"] + [_flag_line(f) for f in own_flags(module_name)]
    if extra:
        lines += ["", extra]
    lines += ["", "Framework flags (absl logging and others): --helpfull"]
    return "\n".join(lines) + "\n"


def run(main, program, parse=None, extra_help=""):
    """The console-script entry: `--help`/`--helpfull` pages (exit 0), else `app.run(main)` with
    flag errors as one line (`parse` replaces the default parser)."""
    module_name = main.__module__
    args = sys.argv[1:]
    if any(a in HELP for a in args) or any(a in HELP_FULL for a in args):
        page = help_page(module_name, extra_help() if callable(extra_help) else extra_help)
        if any(a in HELP_FULL for a in args):
            page += "\nAll flags:\n" + flags.FLAGS.get_help() + "\n"
        sys.stdout.write(page)
        sys.exit(0)
    names = [f.name for f in own_flags(module_name)]
    app.run(main, flags_parser=parse or flags_parser(program, names))
