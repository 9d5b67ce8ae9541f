#!/usr/bin/env python3
"""How a phone's voice should be encoded for the room: PESQ and CPU per Opus complexity, for
the settings `room_voice_options` (crates/sipx-media/src/bridge/voice.rs) chose from it. Not a
test: it prints a table.

  .venv/bin/python bench/opus_voice.py [--complexities 0,1,2,3,5] [--bitrates 24000,11000]
                                       [--loss 0,10]

Material: five recordings made here with espeak-ng and sox (two voices and the test speech,
with and without background noise), as a phone sends them: 8 kHz μ-law. Each goes through
`opus_roundtrip` (μ-law decode, Opus encode fed 8 kHz, Opus decode, μ-law again: what a phone
in a room hears of another) and is scored by PESQ (ITU-T P.862, narrowband) against the μ-law
it started from, so 4.5 means Opus lost nothing. Cost: `codec_floor`'s Opus encode + decode per
20 ms, the lowest of three runs (the machine's speed varies; anything else running only slows).
"""

import argparse
import audioop
import os
import pathlib
import re
import subprocess
import sys
import tempfile

import numpy as np
from pesq import pesq

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
import media  # noqa: E402  (the e2e tests' audio material)

TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "examples"

VOICES = [
    ("woman", ["-v", "en+f3"], "Please hold while I connect you to the conference room. The meeting about the "
                               "quarterly budget will begin in five minutes, and the agenda has been sent by email."),
    ("man", ["-v", "en-us+m7", "-s", "150"], "Seven three nine, two one four, eight eight zero. If you are calling "
                                             "about an order, press one. Otherwise, stay on the line."),
]


def recordings(work):
    """{name: μ-law path}: each voice clean and with brown noise, and the e2e speech."""
    out = {"test speech": media.make_audio()["speech_8k.ulaw"]}
    for name, args, text in VOICES:
        wav, w8 = work / f"{name}.wav", work / f"{name}8k.wav"
        subprocess.run(["espeak-ng", *args, "-w", str(wav), text], check=True, capture_output=True)
        subprocess.run(["sox", str(wav), "-r", "8000", "-c", "1", str(w8)], check=True)
        out[name] = work / f"{name}.ulaw"
        subprocess.run(["sox", str(w8), "-t", "raw", "-e", "u-law", str(out[name])], check=True)
        seconds = subprocess.run(["soxi", "-D", str(w8)], check=True, capture_output=True, text=True).stdout.strip()
        noise = work / f"{name}_noise.wav"
        subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", str(noise), "synth", seconds, "brownnoise", "vol", "0.04"],
                       check=True)
        out[f"{name} + noise"] = work / f"{name}_noise.ulaw"
        subprocess.run(["sox", "-m", str(w8), str(noise), "-t", "raw", "-e", "u-law", str(out[f"{name} + noise"])],
                       check=True)
    return out


def score(ulaw, work, flags):
    reference = np.frombuffer(audioop.ulaw2lin(pathlib.Path(ulaw).read_bytes(), 2), dtype=np.int16)
    out = work / "heard.s16"
    subprocess.run([str(TARGET / "opus_roundtrip"), "--input", str(ulaw), "--output", str(out), *flags], check=True)
    heard = np.fromfile(out, dtype=np.int16)
    n = min(len(reference), len(heard))
    return pesq(8000, reference[:n].astype(np.float32) / 32768, heard[:n].astype(np.float32) / 32768, "nb")


def cost(ulaw, flags):
    values = []
    for _ in range(3):
        text = subprocess.run([str(TARGET / "codec_floor"), "--input", str(ulaw), "--frames", "3000", *flags],
                              check=True, capture_output=True, text=True).stdout
        values.append(float(re.search(r"Opus encode fed 8 kHz \+ decode to 8 kHz\s+([\d.]+)", text).group(1)))
    return min(values)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--complexities", default="0,1,2,3,5")
    ap.add_argument("--bitrates", default="24000,11000", help="11000 is libopus' own choice at 8 kHz")
    ap.add_argument("--loss", default="0,10", help="expected loss the FEC is sized for, percent")
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "sipx-media", "--example", "opus_roundtrip",
                    "--example", "codec_floor"], cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        material = recordings(work)
        names = list(material)
        print(f"{'bit/s':>6} {'loss':>4} {'cx':>3} {'µs/20ms':>8} {'PESQ mean':>9}  " + "  ".join(f"{n:>14}" for n in names))
        for bitrate in args.bitrates.split(","):
            for loss in args.loss.split(","):
                for c in args.complexities.split(","):
                    flags = ["--bitrate", bitrate, "--loss", loss, "--complexity", c]
                    scores = [score(material[n], work, flags) for n in names]
                    us = cost(material["test speech"], flags)
                    print(f"{bitrate:>6} {loss:>4} {c:>3} {us:>8.1f} {sum(scores) / len(scores):>9.3f}  "
                          + "  ".join(f"{s:>14.3f}" for s in scores), flush=True)


if __name__ == "__main__":
    main()
