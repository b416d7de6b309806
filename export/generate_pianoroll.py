"""Sample piano-rolls from an exported avrnn_tf piano-roll model, with TensorFlow alone.

  python export/generate_pianoroll.py --saved_model=DIR --output_dir=OUT [--num_samples=4]
      [--num_frames=64] [--seed=0] [--temperature=1.0] [--lowest_note=21] [--frame_ticks=240]

For a model trained with emission "bernoulli" (e.g. configs/*.py:jsb): its `sample` returns
`piano_roll` [N, T, D], 0/1 per frame and note. Writes, per roll k, OUT/roll_<seed>_<k>.png (notes
upwards, time to the right, one pixel per frame and note, scaled up) and OUT/roll_<seed>_<k>.mid: a
standard MIDI file (format 0, 480 ticks per quarter note at 120 bpm) in which note column i is
MIDI pitch lowest_note + i (21 = A0, the JSB Chorales layout of 88 piano keys) and each frame lasts
frame_ticks ticks (240 = an eighth note). A note held over consecutive frames is one MIDI note.

Imports only tensorflow, numpy and the standard library (and generate_audio.py beside it, for the
metadata and argument helpers); the PNG and MIDI bytes are written here. Exit status 2 with one
line "generate_pianoroll: error: ..." for a bad argument or a model that is not a piano-roll
model.
"""

import argparse
import os
import struct
import sys
import zlib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate_audio  # noqa: E402  (metadata and argument helpers, TensorFlow import)

PROGRAM = "generate_pianoroll"
TICKS_PER_QUARTER = 480
TEMPO_US_PER_QUARTER = 500_000  # 120 bpm
VELOCITY = 80
UsageError = generate_audio.UsageError


def variable_length(value):
    """A MIDI variable-length quantity: 7 bits per byte, most significant first."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def midi_bytes(roll, lowest_note=21, frame_ticks=240):
    """A format-0 standard MIDI file of a 0/1 piano-roll [T, D] (column i: lowest_note + i)."""
    roll = np.asarray(roll) > 0
    padded = np.concatenate([np.zeros([1, roll.shape[1]], bool), roll,
                             np.zeros([1, roll.shape[1]], bool)])
    events, last = [], 0  # (tick, bytes); offs before ons at the same tick.
    for t in range(1, len(padded)):
        tick = (t - 1) * frame_ticks
        change = padded[t] != padded[t - 1]
        for note in np.flatnonzero(change & padded[t - 1]):
            events.append((tick, bytes([0x80, lowest_note + note, 0])))
        for note in np.flatnonzero(change & padded[t]):
            events.append((tick, bytes([0x90, lowest_note + note, VELOCITY])))
    track = variable_length(0) + b"\xff\x51\x03" + TEMPO_US_PER_QUARTER.to_bytes(3, "big")
    for tick, message in events:
        track += variable_length(tick - last) + message
        last = tick
    track += variable_length(0) + b"\xff\x2f\x00"  # End of track.
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS_PER_QUARTER)
    return header + b"MTrk" + struct.pack(">I", len(track)) + track


def roll_png(roll, scale=4):
    """The bytes of an 8-bit greyscale PNG of a 0/1 roll [T, D]: time to the right, the highest
    note at the top, a note a dark `scale` x `scale` square on white."""
    on = np.asarray(roll).T[::-1] > 0  # [D, T], high notes first
    grey = np.repeat(np.repeat(np.where(on, 20, 250).astype(np.uint8), scale, 0), scale, 1)
    height, width = grey.shape
    scanlines = np.hstack([np.zeros([height, 1], np.uint8), grey]).tobytes()  # filter 0 per row

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(scanlines)) + chunk(b"IEND", b""))


def parse_args(argv):
    p = argparse.ArgumentParser(prog="generate_pianoroll.py", description=__doc__.split("\n")[0])
    p.add_argument("--saved_model", required=True, help="Directory written by avrnn-export.")
    p.add_argument("--output_dir", required=True, help="Where to write the PNGs and MIDI files.")
    p.add_argument("--num_samples", type=int, default=4, help="Number of rolls (batch size).")
    p.add_argument("--num_frames", type=int, default=64, help="Frames per roll.")
    p.add_argument("--seed", type=int, default=0, help="Stateless int32 seed.")
    p.add_argument("--temperature", type=float, default=1.0, help="Latent and emission noise.")
    p.add_argument("--lowest_note", type=int, default=21, help="MIDI pitch of note column 0.")
    p.add_argument("--frame_ticks", type=int, default=240,
                   help=f"MIDI ticks per frame ({TICKS_PER_QUARTER} = a quarter note).")
    args = p.parse_args(argv)
    generate_audio.int32_arg("--num_samples", args.num_samples, 1)
    generate_audio.int32_arg("--num_frames", args.num_frames, 1)
    generate_audio.int32_arg("--seed", args.seed)
    if not 0 <= args.temperature <= 10:
        raise UsageError(f"--temperature={args.temperature}: expected a number from 0 to 10")
    if not 1 <= args.frame_ticks <= 1 << 20:
        raise UsageError(f"--frame_ticks={args.frame_ticks}: expected an integer from 1 to "
                         f"{1 << 20}")
    if not os.path.isfile(os.path.join(args.saved_model, "saved_model.pb")):
        raise UsageError(f"--saved_model={args.saved_model}: no saved_model.pb there")
    return args


def main(argv):
    args = parse_args(argv)
    tf = generate_audio.import_tensorflow()
    model = tf.saved_model.load(args.saved_model)
    meta = generate_audio.read_metadata(model)
    if meta["emission"] != "bernoulli":
        raise UsageError(f"--saved_model={args.saved_model}: not a piano-roll model "
                         f"({meta['model_kind']}/{meta['emission']}); use export/generate_audio.py")
    notes = int(meta["frame_size"])
    if not 0 <= args.lowest_note <= 127 - (notes - 1):
        raise UsageError(f"--lowest_note={args.lowest_note}: expected 0 to {128 - notes} for "
                         f"{notes} notes")
    rolls = model.sample(args.num_samples, args.num_frames, args.seed,
                         float(args.temperature))["piano_roll"].numpy()
    os.makedirs(args.output_dir, exist_ok=True)
    for k, roll in enumerate(rolls):
        base = os.path.join(args.output_dir, f"roll_{args.seed}_{k}")
        with open(base + ".png", "wb") as f:
            f.write(roll_png(roll))
        with open(base + ".mid", "wb") as f:
            f.write(midi_bytes(roll, args.lowest_note, args.frame_ticks))
    print(f"{PROGRAM}: wrote {len(rolls)} roll(s) of {args.num_frames} frames x {notes} notes "
          f"({meta['model_kind']}/bernoulli, {meta['checkpoint']}, seed {args.seed}) to "
          f"{args.output_dir} (.png, .mid)", flush=True)


def run(argv=None):
    try:
        main(sys.argv[1:] if argv is None else argv)
    except UsageError as e:
        print(f"{PROGRAM}: error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    run()
