"""`make demo`: score the built-in model on freshly synthesised held-out frames and draw its lanes.

Ends with one line: `tuSimple Accuracy=... FP=... FN=...` (the held-out figures).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2

from lane_seg_core.cli import BUILTIN_CHECKPOINT
from lane_seg_core.evaluate import load_ground_truth, predict_records, read_rgb, without_run_time
from lane_seg_core.inference import LaneDetector
from lane_seg_core.metrics import score_records
from lane_seg_core.synth import generate_dataset
from lane_seg_core.tusimple import lane_points, write_records
from lane_seg_core.visualize import contact_sheet, draw_lanes

REPO = Path(__file__).resolve().parent.parent
HELD_OUT_SEED = 20261125  # never used for training (training uses 1, validation 2)


def step(number: int, total: int, text: str) -> None:
    print(f"\n[{number}/{total}] {text}", flush=True)


def train_fresh(out: Path) -> Path:
    """Run the built-in model's recipe from scratch into OUT/run; returns its best checkpoint."""
    env = dict(os.environ, DATA=str(out / "data"), RUN=str(out / "run"), SHIP_TO="", PY=sys.executable)
    subprocess.run(["bash", str(REPO / "training" / "train_builtin.sh")], check=True, env=env)
    return out / "run" / "best.pt"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/demo", help="folder for everything the demo writes")
    parser.add_argument("--checkpoint", help="checkpoint to score (default: the built-in model)")
    parser.add_argument("--train", action="store_true", help="train a fresh model with the built-in recipe first")
    parser.add_argument("--frames", type=int, default=200, help="held-out frames to synthesise and score")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--ignore-run-time", action="store_true",
                        help="score accuracy alone (the official rule zeroes frames over 200 ms, e.g. on a busy CPU)")
    args = parser.parse_args(argv)

    out = Path(args.out)
    total = 5 if args.train else 4
    n = 0
    started = time.perf_counter()
    checkpoint = Path(args.checkpoint) if args.checkpoint else BUILTIN_CHECKPOINT
    if args.train:
        n += 1
        step(n, total, "training a fresh model with the built-in recipe (hours on 2 CPU cores, minutes on a GPU)")
        checkpoint = train_fresh(out)

    n += 1
    step(n, total, f"synthesising {args.frames} held-out 1280x720 frames (seed {HELD_OUT_SEED}) in {out / 'heldout'}")
    held_out = out / "heldout"
    if held_out.exists():
        shutil.rmtree(held_out)
    generate_dataset(held_out, args.frames, HELD_OUT_SEED, name="heldout", workers=2, progress=True)
    print()

    n += 1
    step(n, total, f"running {checkpoint} on them and scoring with the official tuSimple rules")
    detector = LaneDetector.from_checkpoint(checkpoint, device=args.device)
    print(f"model: SegNet width {detector.model.config.width}, input {detector.prep.input_size}, "
          f"device {detector.device}, lane threshold {detector.post.lane_threshold}")
    gts = load_ground_truth(held_out)
    preds = predict_records(detector, held_out, gts)
    predictions = write_records(out / "predictions.json", preds)
    score = score_records(without_run_time(preds) if args.ignore_run_time else preds, gts)
    run_times = [p.run_time for p in preds]

    n += 1
    step(n, total, "drawing lanes (coloured) over ground truth (white dots)")
    overlays = out / "overlays"
    overlays.mkdir(parents=True, exist_ok=True)
    pictures = []
    for gt in gts[:9]:
        image = read_rgb(held_out / gt.raw_file)
        truth = [lane_points(lane, gt.h_samples) for lane in gt.lanes]
        picture = draw_lanes(image, detector(image).lanes, truth)
        name = gt.raw_file.replace("/", "_").replace("clips_", "")
        cv2.imwrite(str(overlays / name), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
        pictures.append(picture)
    sheet = out / "contact_sheet.jpg"
    cv2.imwrite(str(sheet), cv2.cvtColor(contact_sheet(pictures), cv2.COLOR_RGB2BGR))

    n += 1
    step(n, total, "report")
    print(f"held-out frames:   {score.frames} in {held_out}")
    print(f"predictions:       {predictions}")
    print(f"overlays:          {overlays}/ and {sheet}")
    print(f"per-frame time:    median {statistics.median(run_times):.1f} ms, "
          f"max {max(run_times):.1f} ms (batches of 8, {detector.device})")
    print(f"F1:                {score.f1:.4f}")
    print(f"demo took {time.perf_counter() - started:.0f} s")
    print(score.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
