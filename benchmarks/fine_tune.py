"""Fine-tuning the built-in model to a user's own camera: score before and after `lane-seg train --init`.

    .venv/bin/python benchmarks/fine_tune.py [--camera FOCAL HEIGHT HORIZON] [--frames N] [--steps N] [--out DIR]

A user with a few hundred labelled frames of a camera unlike tuSimple's adapts the built-in model in minutes.
Here the camera's frames are synthetic (`lane-seg synth --world highway --camera ...`; the default camera is a
truck's: wide lens, mounted 2.6 m high, horizon at row 330), so their labels are exact. The script writes a
training set and a held-out set of that camera, scores the built-in model on the held-out set, fine-tunes it
with `--init` (its settings, a fresh optimiser) on the training set, and scores the result on the same held-out
frames. It prints both official tuSimple scores (accuracy alone: `--ignore-run-time`) and the change.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import cpu_model, load_average  # benchmarks/machine.py, beside this script
from lane_seg_core.builtin import BUILTIN_CHECKPOINT
from lane_seg_core.evaluate import evaluate_folder
from lane_seg_core.inference import LaneDetector
from lane_seg_core.synth import HIGHWAY_CONFIG, generate_dataset
from lane_seg_core.threads import use_cpu_threads
from lane_seg_core.train import TrainConfig, Trainer

TRUCK_CAMERA = (800.0, 2.6, 330.0)  # focal px, height m, horizon row


def dataset(folder: Path, count: int, seed: int, camera: tuple[float, float, float], workers: int) -> Path:
    """A highway-world dataset seen through `camera`, unless `folder` already holds one."""
    if not (folder / "label_data_camera.json").is_file():
        config = replace(HIGHWAY_CONFIG, fixed_camera=camera)
        generate_dataset(folder, count, seed, name="camera", workers=workers, config=config)
    return folder


def score(checkpoint: Path, folder: Path, device: str) -> tuple[float, float, float]:
    """(accuracy, FP, FN) of a checkpoint on a folder."""
    result = evaluate_folder(LaneDetector.from_checkpoint(checkpoint, device=device), folder, ignore_run_time=True)
    return result.accuracy, result.fp, result.fn


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--camera", type=float, nargs=3, metavar=("FOCAL", "HEIGHT", "HORIZON"), default=TRUCK_CAMERA)
    p.add_argument("--frames", type=int, default=300, help="training frames of the new camera")
    p.add_argument("--val-frames", type=int, default=100, help="held-out frames of the new camera")
    p.add_argument("--steps", type=int, default=600, help="fine-tuning steps (batch 8)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--init", default=str(BUILTIN_CHECKPOINT), help="the model to adapt (default: the built-in one)")
    p.add_argument("--out", default="out/fine_tune")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    if args.frames < 8 or args.val_frames < 1 or args.steps < 1:
        p.error("--frames must be >= 8 (one batch), --val-frames and --steps >= 1")
    use_cpu_threads(0)
    out = Path(args.out)
    camera = tuple(args.camera)
    print(f"machine: {cpu_model()}, load {load_average()}; camera focal {camera[0]:g} px, height {camera[1]:g} m, "
          f"horizon row {camera[2]:g}")
    train = dataset(out / "train", args.frames, 41, camera, args.workers)
    held_out = dataset(out / "val", args.val_frames, 42, camera, args.workers)
    before = score(Path(args.init), held_out, args.device)
    started = time.perf_counter()
    cfg = TrainConfig(
        data=str(train), val=str(held_out), out=str(out / "run"), init=args.init, epochs=1000, max_steps=args.steps,
        batch_size=8, lr=args.lr, warmup_steps=min(100, args.steps // 5 + 1), val_every=args.steps,
        val_frames=args.val_frames, workers=1, device=args.device, progress=False, seed=0,
    )
    Trainer(cfg).run()
    minutes = (time.perf_counter() - started) / 60
    after = score(out / "run" / "best.pt", held_out, args.device)
    print(f"{'':24} {'Accuracy':>9} {'FP':>7} {'FN':>7}")
    print(f"{'before (--init model)':24} {before[0]:9.3f} {before[1]:7.3f} {before[2]:7.3f}")
    print(f"{'after fine-tuning':24} {after[0]:9.3f} {after[1]:7.3f} {after[2]:7.3f}")
    print(f"fine-tuned on {args.frames} frames for {args.steps} steps in {minutes:.1f} min; "
          f"accuracy {after[0] - before[0]:+.3f}, FP {after[1] - before[1]:+.3f}, FN {after[2] - before[2]:+.3f}; "
          f"model: {out / 'run' / 'best.pt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
