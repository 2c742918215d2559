"""The official tuSimple lane metric (TuSimple/tusimple-benchmark `evaluate/lane.py`), reproduced exactly.

Semantics kept from `LaneEval`, quirks included:

* a gt lane's pixel threshold is ``20 / cos(theta)``, theta the angle of a least-squares fit of x on y
  over the lane's present points (0 when fewer than two are present);
* every point, absent ones (x < 0) included, is compared after replacing absent x by -100, so rows
  absent in both pred and gt count as hits and ``|pred - gt| < thresh`` is strict;
* a gt lane is matched when its best prediction hits at least 85% of the rows; FP is
  ``len(pred) - matched`` (so one prediction matching two gt lanes makes it negative);
* a frame slower than 200 ms, or with more than ``len(gt) + 2`` predictions, scores (0, 0, 1);
* with more than 4 gt lanes, one miss is forgiven and the worst lane accuracy dropped; accuracy and
  FN are divided by ``min(len(gt), 4)``.

F1 is not part of the official metric (see `tusimple_f1`): the harmonic mean of precision = 1 - FP and
recall = 1 - FN over the dataset's mean FP and FN, as lane-detection papers report it next to Accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np

from .tusimple import LabelFormatError, LaneRecord, read_records

PIXEL_THRESH = 20.0  # LaneEval.pixel_thresh
PT_THRESH = 0.85  # LaneEval.pt_thresh
MAX_RUN_TIME_MS = 200.0  # slower frames score (0, 0, 1)
_ABSENT_FILL = -100.0  # what LaneEval.line_accuracy puts in place of x < 0

PathLike = Union[str, os.PathLike]


def _slope_x_on_y(xs: np.ndarray, ys: np.ndarray) -> float:
    """Least-squares slope dx/dy with intercept (what sklearn's LinearRegression coef_ gives)."""
    yc = ys - ys.mean()
    denom = float(np.dot(yc, yc))
    if denom == 0.0:  # all rows equal: sklearn's minimum-norm lstsq solution is 0
        return 0.0
    return float(np.dot(yc, xs - xs.mean())) / denom


def _gt_thresholds(gt: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Per gt lane pixel threshold ``PIXEL_THRESH / cos(theta)`` (LaneEval.get_angle)."""
    threshs = np.empty(len(gt), dtype=np.float64)
    for i, xs in enumerate(gt):
        present = xs >= 0
        theta = np.arctan(_slope_x_on_y(xs[present], ys[present])) if present.sum() > 1 else 0.0
        threshs[i] = PIXEL_THRESH / np.cos(theta)
    return threshs


def _as_lanes(lanes: Sequence[Sequence[float]], n_rows: int, what: str) -> np.ndarray:
    """Stack lanes into an (n, n_rows) float array, raising ValueError on a length mismatch."""
    rows = []
    for i, lane in enumerate(lanes):
        arr = np.asarray(lane, dtype=np.float64).reshape(-1)
        if arr.shape[0] != n_rows:
            raise ValueError(
                f"{what} lane {i} has {arr.shape[0]} points but h_samples has {n_rows} rows"
            )
        rows.append(arr)
    return np.stack(rows) if rows else np.zeros((0, n_rows), dtype=np.float64)


def tusimple_bench(
    pred_lanes: Sequence[Sequence[float]],
    gt_lanes: Sequence[Sequence[float]],
    h_samples: Sequence[float],
    run_time_ms: float,
) -> tuple[float, float, float]:
    """Official `LaneEval.bench` for one frame: (accuracy, fp, fn); ValueError on lane length mismatch."""
    ys = np.asarray(h_samples, dtype=np.float64).reshape(-1)
    n_rows = ys.shape[0]
    pred = _as_lanes(pred_lanes, n_rows, "prediction")  # checked first, as the official code does
    gt = _as_lanes(gt_lanes, n_rows, "ground-truth")
    if n_rows == 0 and len(gt) > 0:
        raise ValueError("h_samples is empty but the frame has ground-truth lanes")
    if run_time_ms > MAX_RUN_TIME_MS or len(gt) + 2 < len(pred):
        return 0.0, 0.0, 1.0

    threshs = _gt_thresholds(gt, ys)
    pred_f = np.where(pred >= 0, pred, _ABSENT_FILL)
    gt_f = np.where(gt >= 0, gt, _ABSENT_FILL)
    # hits[g, p, row]; accs[g, p] = hit rows / all rows (absent rows included)
    hits = np.abs(pred_f[None, :, :] - gt_f[:, None, :]) < threshs[:, None, None]
    accs = hits.sum(axis=2) / float(n_rows) if n_rows else np.zeros((len(gt), len(pred)))

    line_accs: list[float] = []
    fn = 0.0
    matched = 0.0
    for g in range(len(gt)):
        max_acc = float(accs[g].max()) if len(pred) > 0 else 0.0
        if max_acc < PT_THRESH:
            fn += 1
        else:
            matched += 1
        line_accs.append(max_acc)
    fp = len(pred) - matched
    if len(gt) > 4 and fn > 0:
        fn -= 1
    s = sum(line_accs)
    if len(gt) > 4:
        s -= min(line_accs)
    accuracy = s / max(min(4.0, len(gt)), 1.0)
    fp_rate = fp / len(pred) if len(pred) > 0 else 0.0
    fn_rate = fn / max(min(len(gt), 4.0), 1.0)
    return float(accuracy), float(fp_rate), float(fn_rate)


def tusimple_f1(fp: float, fn: float) -> float:
    """F1 from mean FP/FN rates with precision = 1 - FP and recall = 1 - FN (0 when FP = FN = 1).

    CLRNet's variant (tp = 1 - fp, recall = tp / (tp + fn)) reports 0.67 for a model that finds no
    lane at all (FP 0, FN 1); this one reports 0 there and agrees with it to 1e-3 on published figures.
    """
    precision, recall = 1.0 - fp, 1.0 - fn
    if precision + recall <= 0:
        return 0.0
    return max(0.0, 2 * precision * recall / (precision + recall))


@dataclass(frozen=True)
class TuSimpleScore:
    """Dataset-level tuSimple result: mean accuracy, FP and FN over frames, F1 (see tusimple_f1), frame count."""

    accuracy: float
    fp: float
    fn: float
    f1: float
    frames: int

    def summary(self) -> str:
        """One line in the tuSimple leaderboard's terms."""
        return f"tuSimple Accuracy={self.accuracy:.3f} FP={self.fp:.3f} FN={self.fn:.3f}"


def score_records(preds: Sequence[LaneRecord], gts: Sequence[LaneRecord]) -> TuSimpleScore:
    """Official `bench_one_submit` over records: one prediction per gt frame, matched by raw_file."""
    if len(gts) == 0:
        raise ValueError("no ground-truth frames to score")
    gt_by_file: dict[str, LaneRecord] = {}
    for gt in gts:
        if gt.raw_file in gt_by_file:
            raise ValueError(f"{gt.raw_file}: appears more than once in the ground truth")
        gt_by_file[gt.raw_file] = gt

    seen: set[str] = set()
    for pred in preds:
        if pred.raw_file not in gt_by_file:
            raise ValueError(f"{pred.raw_file}: prediction for a frame that is not in the ground truth")
        if pred.raw_file in seen:
            raise ValueError(f"{pred.raw_file}: more than one prediction for this frame")
        if pred.run_time is None:
            raise ValueError(f"{pred.raw_file}: prediction has no run_time")
        seen.add(pred.raw_file)
    missing = [gt.raw_file for gt in gts if gt.raw_file not in seen]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise ValueError(f"no prediction for {len(missing)} ground-truth frame(s): {shown}")

    accuracy = fp = fn = 0.0
    for pred in preds:  # summed in prediction order, like the official loop
        gt = gt_by_file[pred.raw_file]
        try:
            a, p, n = tusimple_bench(pred.lanes, gt.lanes, gt.h_samples, pred.run_time)
        except ValueError as exc:
            raise ValueError(f"{pred.raw_file}: {exc}") from None
        accuracy += a
        fp += p
        fn += n
    num = len(gt_by_file)
    fp_mean, fn_mean = fp / num, fn / num
    return TuSimpleScore(accuracy / num, fp_mean, fn_mean, tusimple_f1(fp_mean, fn_mean), num)


def evaluate_tusimple(pred_json: PathLike, gt_json: PathLike | Sequence[PathLike]) -> TuSimpleScore:
    """Score a tuSimple prediction file against one or more gt label files."""
    gt_paths = [gt_json] if isinstance(gt_json, (str, os.PathLike)) else list(gt_json)
    if not gt_paths:
        raise ValueError("no ground-truth label file given")
    gts: list[LaneRecord] = []
    for path in gt_paths:
        gts.extend(read_records(path))
    preds = read_records(pred_json, require_run_time=True)
    return score_records(preds, gts)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m lane_seg_core.metrics PRED_JSON GT_JSON [GT_JSON...]``."""
    parser = argparse.ArgumentParser(
        prog="python -m lane_seg_core.metrics",
        description="Score tuSimple predictions with the official metric (Accuracy, FP, FN), plus F1 of precision "
                    "1 - FP and recall 1 - FN (not official).",
    )
    parser.add_argument("pred_json", help="predictions, one JSON object per line (with run_time in ms)")
    parser.add_argument("gt_json", nargs="+", help="ground-truth label file(s), e.g. test_label.json")
    parser.add_argument("--json", action="store_true", help="print the full-precision result as JSON")
    args = parser.parse_args(argv)
    try:
        score = evaluate_tusimple(args.pred_json, args.gt_json)
    except (LabelFormatError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"Accuracy": score.accuracy, "FP": score.fp, "FN": score.fn,
                          "F1": score.f1, "frames": score.frames}))
    else:
        print(f"{score.summary()} F1={score.f1:.3f} frames={score.frames}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
