"""Run a detector over a labelled folder, write a tuSimple submission file and score it with the official rules.

The folder's labels are tuSimple's or CULane's (lane_seg_core.labels); both are scored at their own rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

import cv2
import numpy as np

from .inference import LaneDetector, NetworkOutputs
from .labels import read_folder
from .metrics import TuSimpleScore, score_records
from .tusimple import LaneRecord, write_records


def read_rgb(path: Path) -> np.ndarray:
    """Decode an image file to RGB uint8 [H,W,3]; a clear error names the file."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def load_ground_truth(data_dir: str | os.PathLike) -> list[LaneRecord]:
    """Every labelled frame of a tuSimple or CULane folder."""
    return read_folder(data_dir)


def _batches(root: Path, records: Sequence[LaneRecord], batch_size: int) -> Iterator[tuple[list[LaneRecord], list[np.ndarray]]]:
    for start in range(0, len(records), batch_size):
        chunk = list(records[start : start + batch_size])
        yield chunk, [read_rgb(root / r.raw_file) for r in chunk]


def _submission(detector: LaneDetector, outputs: NetworkOutputs, chunk: Sequence[LaneRecord]) -> list[LaneRecord]:
    out = []
    for record, detection in zip(chunk, detector.lanes(outputs)):
        out.append(LaneRecord.of_lanes(record.raw_file, record.h_samples, detection.lanes, detection.image_size[0],
                                       detection.timings["total"]))
    return out


def predict_records(
    detector: LaneDetector, data_dir: str | os.PathLike, records: Sequence[LaneRecord], batch_size: int = 8
) -> list[LaneRecord]:
    """tuSimple predictions (lanes at each frame's h_samples, run_time in ms) for the given frames."""
    predictions = []
    detector.warm_up(batch_size=min(batch_size, len(records)) or 1)  # run_time counts: keep set-up out of it
    for chunk, images in _batches(Path(data_dir), records, batch_size):
        predictions += _submission(detector, detector.network(images), chunk)
    return predictions


def without_run_time(records: Sequence[LaneRecord]) -> list[LaneRecord]:
    """The same predictions with run_time 0, so that the official 200 ms rule cannot zero a frame."""
    return [replace(r, run_time=0.0) for r in records]


def selection_metric(accuracy: float, fp: float, fn: float) -> float:
    """How checkpoints and thresholds are ranked: accuracy less both error rates."""
    return accuracy - fp - fn


@dataclass(frozen=True)
class ThresholdSweep:
    best_threshold: float
    best_score: TuSimpleScore
    scores: dict[float, TuSimpleScore]


class Interrupted(Exception):
    """A sweep stopped because its caller asked it to; it has no figures."""


def threshold_predictions(
    detector: LaneDetector, data_dir: str | os.PathLike, records: Sequence[LaneRecord],
    thresholds: Sequence[float], batch_size: int = 8, stop: Callable[[], bool] | None = None,
) -> dict[float, list[LaneRecord]]:
    """Each threshold's predictions for `records`, from one network pass.

    `stop` is asked before every batch, for the network and for each threshold; when it says True the sweep
    raises Interrupted.
    """
    def check() -> None:
        if stop is not None and stop():
            raise Interrupted("the threshold sweep was stopped")

    cached = []
    for chunk, images in _batches(Path(data_dir), records, batch_size):
        check()
        cached.append((chunk, detector.network(images)))
    predictions = {}
    for threshold in thresholds:
        variant = detector.with_settings(lane_threshold=threshold)
        predictions[threshold] = []
        for chunk, outputs in cached:
            check()
            predictions[threshold] += _submission(variant, outputs, chunk)
    return predictions


def pick_threshold(predictions: dict[float, list[LaneRecord]], records: Sequence[LaneRecord]) -> ThresholdSweep:
    """Score each threshold's predictions of `records` (in any order); pick the most accurate."""
    position = {r.raw_file: i for i, r in enumerate(records)}
    scores = {}
    for threshold, preds in predictions.items():
        # run_time is not what is being tuned here; keep the 200 ms rule from masking accuracy.
        # Frame order fixes the order of the sums, so gathered shares score exactly like one pass.
        ordered = sorted(preds, key=lambda p: position.get(p.raw_file, -1))
        scores[threshold] = score_records(without_run_time(ordered), records)
    best = max(scores, key=lambda t: (selection_metric(scores[t].accuracy, scores[t].fp, scores[t].fn), scores[t].accuracy))
    return ThresholdSweep(best, scores[best], scores)


def sweep_lane_threshold(
    detector: LaneDetector, data_dir: str | os.PathLike, records: Sequence[LaneRecord],
    thresholds: Sequence[float], batch_size: int = 8, stop: Callable[[], bool] | None = None,
) -> ThresholdSweep:
    """Score each lane-probability threshold on the same network outputs; pick the most accurate.

    `stop` is asked between batches (see threshold_predictions); Interrupted when it says True.
    """
    return pick_threshold(threshold_predictions(detector, data_dir, records, thresholds, batch_size, stop), records)


def evaluate_folder(
    detector: LaneDetector, data_dir: str | os.PathLike, out_json: str | os.PathLike | None = None,
    batch_size: int = 8, ignore_run_time: bool = False,
) -> TuSimpleScore:
    """Predict every labelled frame of a folder, optionally write the submission, and score it.

    `ignore_run_time` scores accuracy alone: the official rule zeroes frames that took over 200 ms, which on a
    busy or slow CPU measures the machine rather than the model. The submission keeps the measured times.
    """
    gts = load_ground_truth(data_dir)
    preds = predict_records(detector, data_dir, gts, batch_size)
    if out_json is not None:
        write_records(out_json, preds)
    return score_records(without_run_time(preds) if ignore_run_time else preds, gts)
