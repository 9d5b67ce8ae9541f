#!/usr/bin/env python3
"""How a phone's voice should be encoded for the room: PESQ and CPU per Opus complexity, for
the settings `room_voice_options` (crates/sipx-media/src/bridge/voice.rs) chose from it. Not a
test: it prints a table.

  .venv/bin/python bench/opus_voice.py [--complexities 0,1,2,3,5] [--bitrates 24000,11000]
                                       [--loss 0,10] [--wideband]

Material: five recordings made here with espeak-ng and sox (two voices and the test speech,
with and without background noise). Each goes through `opus_roundtrip`: the phone's codec
(μ-law at 8 kHz; G.722 at 16 kHz with `--wideband`), Opus encode and decode at that rate, the
phone's codec again: what a phone in a room hears of another. It is scored by PESQ (ITU-T
P.862; narrowband, or P.862.2 wideband) against the audio as the caller's codec delivered it,
so 4.5 (4.64 wideband) means Opus lost nothing. Cost: `codec_floor`'s Opus encode + decode per
20 ms, the lowest of three runs (the machine's speed varies; anything else running only slows).
"""

import argparse
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


def raw(wav, rate, dest):
    subprocess.run(["sox", str(wav), "-r", str(rate), "-c", "1", "-b", "16", "-e", "signed", "-t", "raw", str(dest)],
                   check=True)
    return dest


def recordings(work, rate):
    """{name: raw 16-bit PCM at `rate`}: each voice clean and with brown noise, and the e2e speech."""
    out = {"test speech": raw(media.make_audio()["speech_16k"], rate, work / "test.s16")}
    for name, args, text in VOICES:
        wav, mono = work / f"{name}.wav", work / f"{name}_{rate}.wav"
        subprocess.run(["espeak-ng", *args, "-w", str(wav), text], check=True, capture_output=True)
        subprocess.run(["sox", str(wav), "-r", str(rate), "-c", "1", str(mono)], check=True)
        out[name] = raw(mono, rate, work / f"{name}.s16")
        seconds = subprocess.run(["soxi", "-D", str(mono)], check=True, capture_output=True, text=True).stdout.strip()
        noise, noisy = work / f"{name}_noise.wav", work / f"{name}_noisy.wav"
        subprocess.run(["sox", "-n", "-r", str(rate), "-c", "1", str(noise), "synth", seconds, "brownnoise",
                        "vol", "0.04"], check=True)
        subprocess.run(["sox", "-m", str(mono), str(noise), str(noisy)], check=True)
        out[f"{name} + noise"] = raw(noisy, rate, work / f"{name}_noisy.s16")
    return out


def score(pcm, work, rate, flags):
    reference, heard = work / "reference.s16", work / "heard.s16"
    subprocess.run([str(TARGET / "opus_roundtrip"), "--input", str(pcm), "--reference", str(reference),
                    "--output", str(heard), "--rate", str(rate), *flags], check=True)
    a = np.fromfile(reference, dtype=np.int16).astype(np.float32) / 32768
    b = np.fromfile(heard, dtype=np.int16).astype(np.float32) / 32768
    n = min(len(a), len(b))
    return pesq(rate, a[:n], b[:n], "wb" if rate == 16000 else "nb")


def cost(rate, flags):
    values = []
    khz = rate // 1000
    for _ in range(3):
        text = subprocess.run([str(TARGET / "codec_floor"), "--rate", str(rate), "--frames", "3000", *flags],
                              check=True, capture_output=True, text=True).stdout
        values.append(float(re.search(rf"Opus encode fed {khz} kHz \+ decode to {khz} kHz\s+([\d.]+)", text).group(1)))
    return min(values)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--complexities", default="0,1,2,3,5")
    ap.add_argument("--bitrates", default="24000,11000", help="11000 is libopus' own choice at 8 kHz")
    ap.add_argument("--loss", default="0,10", help="expected loss the FEC is sized for, percent")
    ap.add_argument("--wideband", action="store_true", help="G.722 phones: 16 kHz, wideband PESQ")
    args = ap.parse_args()
    rate = 16000 if args.wideband else 8000
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "sipx-media", "--example", "opus_roundtrip",
                    "--example", "codec_floor"], cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        material = recordings(work, rate)
        names = list(material)
        print(f"{'bit/s':>6} {'loss':>4} {'cx':>3} {'µs/20ms':>8} {'PESQ mean':>9}  " + "  ".join(f"{n:>14}" for n in names))
        for bitrate in args.bitrates.split(","):
            for loss in args.loss.split(","):
                for c in args.complexities.split(","):
                    flags = ["--bitrate", bitrate, "--loss", loss, "--complexity", c]
                    scores = [score(material[n], work, rate, flags) for n in names]
                    us = cost(rate, flags)
                    print(f"{bitrate:>6} {loss:>4} {c:>3} {us:>8.1f} {sum(scores) / len(scores):>9.3f}  "
                          + "  ".join(f"{s:>14.3f}" for s in scores), flush=True)


if __name__ == "__main__":
    main()
