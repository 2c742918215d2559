"""Real roads: a model scored on real labelled tuSimple frames, and its overlays on real frames of other cameras.

    .venv/bin/python benchmarks/real_roads.py [--checkpoint CKPT] [--real DIR] [--out DIR] [--video-frames N] [--strict]

The real frames are ../shared/data/real/ (its README says what each folder is for); they are not part of the
repository, and this script says so and exits 2 when they are absent. It prints:

1. the official tuSimple score (`lane-seg eval --ignore-run-time`, the same code) on `tusimple-0601-val/`, each
   frame's own score, and PASS/FAIL against the targets Accuracy >= 0.95, FP <= 0.10, FN <= 0.05;
2. lanes per frame on each camera of `unlabelled/` and on the dashcam video (solidWhiteRight.mp4 shows 2 to 3
   lines: more are lanes found on barriers, road edges or the far carriageway);
3. where it wrote the overlays (val frames with the ground truth as white dots, every unlabelled frame, the
   video) and one contact sheet: look at them, a score of 6 frames is not the whole story.

Never train on these frames; thresholds tuned on the val frames must be said to be.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

if __package__ in (None, ""):  # run as a script: make the repository's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2
import numpy as np

from machine import cpu_model, load_average, verdict  # benchmarks/machine.py, beside this script
from lane_seg_core.builtin import BUILTIN_CHECKPOINT
from lane_seg_core.evaluate import load_ground_truth, predict_records, read_rgb, without_run_time
from lane_seg_core.inference import LaneDetector
from lane_seg_core.metrics import TuSimpleScore, score_records, tusimple_bench
from lane_seg_core.predict import OVERLAY_FOLDER, predict_path
from lane_seg_core.threads import use_cpu_threads
from lane_seg_core.tusimple import lane_points, read_records
from lane_seg_core.visualize import contact_sheet, draw_detection, draw_lanes

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
VAL_FOLDER = "tusimple-0601-val"
UNLABELLED_FOLDER = "unlabelled"
VIDEO = "udacity_lanelines_p1/solidWhiteRight.mp4"
TARGET_ACCURACY, TARGET_FP, TARGET_FN = 0.95, 0.10, 0.05
SHEET_FRAMES = 12


@dataclass(frozen=True)
class FrameScore:
    raw_file: str
    accuracy: float
    fp: float
    fn: float
    predicted: int
    labelled: int


@dataclass(frozen=True)
class LaneCounts:
    """Lanes found per frame of one camera (a folder of unlabelled frames, or the video)."""

    name: str
    counts: tuple[int, ...]

    def line(self) -> str:
        counts = np.array(self.counts)
        histogram = ", ".join(f"{n}: {int(np.sum(counts == n))}" for n in range(counts.min(), counts.max() + 1))
        return (f"{self.name:<28} {len(counts):>4} frames: lanes per frame mean {counts.mean():.2f} "
                f"(frames with n lanes {{{histogram}}})")


def score_val(detector: LaneDetector, val: Path, out: Path) -> tuple[TuSimpleScore, list[FrameScore]]:
    """The official score of the labelled frames (run time ignored) and each frame's; overlays with the truth."""
    truth = load_ground_truth(val)
    predictions = without_run_time(predict_records(detector, val, truth))
    frames = []
    for pred, gt in zip(predictions, truth):
        accuracy, fp, fn = tusimple_bench(pred.lanes, gt.lanes, gt.h_samples, 0.0)
        frames.append(FrameScore(gt.raw_file, accuracy, fp, fn, len(pred.lanes), len(gt.lanes)))
        image = read_rgb(val / gt.raw_file)
        truth_dots = [lane_points(lane, gt.h_samples) for lane in gt.lanes]
        overlay = draw_lanes(draw_detection(image, detector(image)), [], truth=truth_dots)
        _write(out / "val" / (gt.raw_file.replace("/", "_")), overlay)
    return score_records(predictions, truth), frames


def _write(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path.with_suffix(".jpg")), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path.with_suffix('.jpg')}")


def count_unlabelled(detector: LaneDetector, unlabelled: Path, out: Path) -> list[LaneCounts]:
    """Lanes per frame for each camera folder of unlabelled frames; overlays under out/<camera>/overlays."""
    results = []
    for camera in sorted(p for p in unlabelled.iterdir() if p.is_dir()):
        if not any(f.suffix.lower() in (".jpg", ".jpeg", ".png") for f in camera.rglob("*")):
            continue  # a folder of a video only
        summary = predict_path(detector, camera, out / camera.name, progress=False)
        results.append(LaneCounts(camera.name, _lane_counts(summary.predictions)))
    return results


def count_video(detector: LaneDetector, video: Path, out: Path, max_frames: int | None) -> LaneCounts:
    """Lanes per frame of the dashcam video (its first `max_frames`); an overlay video under out/video."""
    summary = predict_path(detector, video, out / "video", max_frames=max_frames, progress=False)
    return LaneCounts(f"video {video.name}", _lane_counts(summary.predictions))


def _lane_counts(predictions: Path) -> tuple[int, ...]:
    return tuple(len(r.lanes) for r in read_records(predictions))


def sheet(out: Path) -> Path:
    """One contact sheet: the val overlays, then unlabelled ones, up to SHEET_FRAMES."""
    paths = sorted((out / "val").glob("*.jpg")) + sorted(out.glob(f"*/{OVERLAY_FOLDER}/**/*.jpg"))
    images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths[:SHEET_FRAMES]]
    path = out / "contact_sheet"
    _write(path, contact_sheet(images, columns=4, tile_width=480))
    return path.with_suffix(".jpg")


def report_val(score: TuSimpleScore, frames: Sequence[FrameScore]) -> list[str]:
    lines = [f"## Real tuSimple val ({score.frames} frames, official metric, run time ignored)", "",
             "| frame | accuracy | FP | FN | lanes predicted / labelled |", "|---|---|---|---|---|"]
    lines += [f"| {f.raw_file} | {f.accuracy:.3f} | {f.fp:.3f} | {f.fn:.3f} | {f.predicted} / {f.labelled} |"
              for f in frames]
    lines += ["", score.summary() + f" F1={score.f1:.3f}",
              f"Accuracy {score.accuracy:.3f} >= {TARGET_ACCURACY}: {verdict(score.accuracy >= TARGET_ACCURACY)}",
              f"FP {score.fp:.3f} <= {TARGET_FP}: {verdict(score.fp <= TARGET_FP)}",
              f"FN {score.fn:.3f} <= {TARGET_FN}: {verdict(score.fn <= TARGET_FN)}"]
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=BUILTIN_CHECKPOINT, help="a .pt checkpoint or an .onnx export")
    p.add_argument("--real", type=Path, default=REAL_DATA, help="the real frames (../shared/data/real)")
    p.add_argument("--out", type=Path, default=Path("out/real_roads"), help="where the overlays go")
    p.add_argument("--video-frames", type=int, default=None, help="frames of the video to run (default: all)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: half the CPUs)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target FAILs (default: report only)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    val, unlabelled = args.real / VAL_FOLDER, args.real / UNLABELLED_FOLDER
    if not val.is_dir() or not unlabelled.is_dir():
        print(f"error: no real frames at {args.real} (expected {VAL_FOLDER}/ and {UNLABELLED_FOLDER}/ there; "
              "they are not part of the repository)", file=sys.stderr)
        return 2
    if args.video_frames is not None and args.video_frames < 1:
        print(f"error: --video-frames must be >= 1, got {args.video_frames}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        threads = use_cpu_threads(args.threads)
        detector = LaneDetector.from_checkpoint(args.checkpoint, device=args.device)
    except (ValueError, OSError) as exc:  # a bad --threads or --device, a checkpoint that is missing or not ours
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Machine: {cpu_model()}, torch threads {threads}; load average (1/5/15 min) {load_average()}")
    print(f"Model: {args.checkpoint}; input {detector.prep.input_width}x{detector.prep.input_height}, "
          f"lane threshold {detector.post.lane_threshold}\n")

    score, frames = score_val(detector, val, args.out)
    print("\n".join(report_val(score, frames)), end="\n\n", flush=True)

    counts = count_unlabelled(detector, unlabelled, args.out)
    video = unlabelled / VIDEO
    if video.is_file():
        counts.append(count_video(detector, video, args.out, args.video_frames))
    print("## Unlabelled real frames: lanes per frame\n")
    print("\n".join(c.line() for c in counts), end="\n\n")

    print(f"Overlays: {args.out}/val (white dots: the labels), {args.out}/<camera>/{OVERLAY_FOLDER}, "
          f"{args.out}/video; contact sheet {sheet(args.out)}")
    passed = score.accuracy >= TARGET_ACCURACY and score.fp <= TARGET_FP and score.fn <= TARGET_FN
    print(f"Finished in {time.perf_counter() - start:.0f} s")
    return 1 if args.strict and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
