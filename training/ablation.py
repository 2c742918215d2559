"""Which part of the highway world matters: short fine-tunes of one model on variants of it, judged on real roads.

    .venv/bin/python training/ablation.py [--init CKPT] [--frames N] [--steps N] [--out DIR] [--only NAME ...]

Each variant is the highway world with one group of its parts switched off, rendered as N frames (plus the same
N basic-world frames in every variant, as in the recipe), and fine-tuned from the same checkpoint for the same
steps with the same seed. Each result is scored by benchmarks/real_roads.py on the real val frames, and lanes per
frame are counted on the real dashcam video; the table is printed at the end. Needs ../shared/data/real.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lane_seg_core.builtin import BUILTIN_CHECKPOINT  # noqa: E402
from lane_seg_core.synth import DEFAULT_CONFIG, HIGHWAY_CONFIG, generate_dataset  # noqa: E402

LAYOUTS = ROOT.parent / "shared" / "data" / "real" / "tusimple-train-labels"
REAL_LINE = re.compile(r"^tuSimple Accuracy=([\d.]+) FP=([\d.]+) FN=([\d.]+)", re.M)
VIDEO_LINE = re.compile(r"^video .*lanes per frame mean ([\d.]+)", re.M)

VARIANTS = {
    "basic": None,  # the basic world only: more training, nothing new
    "highway": HIGHWAY_CONFIG,
    "no_hard_negatives": replace(
        HIGHWAY_CONFIG, barrier_prob=0.0, far_carriageway_prob=0.0, decoy_prob=0.0, verge_variety=False
    ),
    "random_layouts": replace(HIGHWAY_CONFIG, layouts=""),
    "no_camera_optics": replace(HIGHWAY_CONFIG, wide_camera_prob=0.0, effects_prob=0.0, hood_prob=0.0),
}


def world(name: str, frames: int, out: Path) -> Path:
    """The training folder of one variant: its highway frames (if any) and the shared basic frames."""
    folder = out / "data" / name
    basic = out / "data" / "basic_frames"
    if not (basic / "label_data_basic.json").is_file():
        generate_dataset(basic, frames, 13, name="basic", workers=2)
    folder.mkdir(parents=True, exist_ok=True)
    config = VARIANTS[name]
    if config is not None and not (folder / "label_data_highway.json").is_file():
        layouts = str(LAYOUTS) if name != "random_layouts" else ""
        generate_dataset(folder, frames, 11, name="highway", workers=2, config=replace(config, layouts=layouts))
    if not (folder / "label_data_basic.json").exists():  # the shared basic frames, linked in
        (folder / "clips").mkdir(exist_ok=True)
        for clip in (basic / "clips").iterdir():
            (folder / "clips" / clip.name).symlink_to(clip.resolve(), target_is_directory=True)
        (folder / "label_data_basic.json").symlink_to((basic / "label_data_basic.json").resolve())
    return folder


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--init", default=str(BUILTIN_CHECKPOINT))
    p.add_argument("--frames", type=int, default=1000)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--val", default="data/synth/highway_val", help="synthetic validation folder (best.pt)")
    p.add_argument("--out", default="runs/ablation")
    p.add_argument("--only", nargs="*", choices=sorted(VARIANTS), help="run these variants only")
    p.add_argument("--data-only", action="store_true", help="render the variants' frames, train nothing")
    args = p.parse_args()
    out = ROOT / args.out
    if args.data_only:
        for name in args.only or VARIANTS:
            print(f"{name}: {world(name, args.frames, out)}", flush=True)
        return 0
    rows = []
    for name in args.only or VARIANTS:
        data, run = world(name, args.frames, out), out / name
        if not (run / "best.pt").is_file():
            subprocess.run(
                [sys.executable, "-m", "lane_seg_core.cli", "train", "--data", str(data), "--val", args.val,
                 "--out", str(run), "--init", args.init, "--batch-size", "8", "--lr", "1e-3", "--warmup-steps", "100",
                 "--epochs", "1000", "--max-steps", str(args.steps), "--val-every", str(args.steps),
                 "--val-frames", "50", "--workers", "1", "--seed", "0", "--no-progress"],
                check=True, cwd=ROOT,
            )
        report = subprocess.run(
            [sys.executable, "benchmarks/real_roads.py", "--checkpoint", str(run / "best.pt"), "--out", str(run / "real")],
            capture_output=True, text=True, cwd=ROOT,
        ).stdout
        (run / "real.txt").write_text(report)
        real, video = REAL_LINE.search(report), VIDEO_LINE.search(report)
        rows.append((name, real.groups() if real else ("?",) * 3, video.group(1) if video else "?"))
        print(f"{name}: real val {rows[-1][1]}, video lanes/frame {rows[-1][2]}", flush=True)
    print(f"\n| variant ({args.steps} steps from {Path(args.init).name}) | real val Accuracy | FP | FN | video lanes/frame |")
    print("|---|---|---|---|---|")
    for name, (acc, fp, fn), video in rows:
        print(f"| {name} | {acc} | {fp} | {fn} | {video} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
