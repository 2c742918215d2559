"""The CULane lane file format: `foo.lines.txt` beside `foo.jpg`, one lane per line as "x y x y ..." pixels.

CULane frames are read into tuSimple's LaneRecord so that the dataset, evaluation and the metric use them
unchanged. Each lane's x is interpolated at the rows of `rows_for_height`: every ROW_STEP pixels from
ROW_STEP above the bottom edge up to the top (for CULane's 590-row images 0, 10, ..., 580, the rows its labels
are drawn at; for 720 rows the grid of tuSimple's h_samples), ABSENT outside the lane's y range. Coordinates
stay at the image's own resolution.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from .tusimple import ABSENT, ROW_STEP, LabelFormatError, LaneRecord

LABEL_SUFFIX = ".lines.txt"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def read_lanes(path: str | os.PathLike) -> list[np.ndarray]:
    """The lanes of one `*.lines.txt` as float [N, 2] (x, y) arrays, points as written; blank lines skipped."""
    path = Path(path)
    lanes = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            tokens = line.split()
            if tokens:
                lanes.append(_parse_lane(tokens, f"{path}:{number}"))
    return lanes


def _parse_lane(tokens: Sequence[str], where: str) -> np.ndarray:
    if len(tokens) % 2:
        raise LabelFormatError(f"{where}: {len(tokens)} values, expected x y pairs (an even number)")
    values = []
    for token in tokens:
        try:
            value = float(token)
        except ValueError:
            raise LabelFormatError(f"{where}: '{token}' is not a number") from None
        if not math.isfinite(value):
            raise LabelFormatError(f"{where}: '{token}' is not a finite number")
        values.append(value)
    return np.asarray(values, dtype=np.float64).reshape(-1, 2)


def rows_for_height(height: int) -> tuple[int, ...]:
    """The label rows of an image `height` pixels high, top first: every ROW_STEP up from `height - ROW_STEP`."""
    return tuple(range(height - ROW_STEP, -1, -ROW_STEP))[::-1]


def resample(points: np.ndarray, rows: Sequence[int], width: int) -> tuple[float, ...]:
    """x of a lane at each row, interpolated between its points with 0 <= x < width; ABSENT outside their y range."""
    kept = points[(points[:, 0] >= 0) & (points[:, 0] < width)]
    if len(kept) == 0:
        return (float(ABSENT),) * len(rows)
    kept = kept[np.argsort(kept[:, 1], kind="stable")]
    ys = np.asarray(rows, dtype=np.float64)
    xs = np.interp(ys, kept[:, 1], kept[:, 0])
    inside = (ys >= kept[0, 1]) & (ys <= kept[-1, 1])
    return tuple(float(x) if ok else float(ABSENT) for x, ok in zip(xs, inside))


def find_label_files(root: str | os.PathLike) -> list[Path]:
    """Every `*.lines.txt` under `root`, recursively (symbolic links followed), sorted."""
    found = []
    for folder, _, names in os.walk(root, followlinks=True):
        found += [Path(folder, name) for name in names if name.endswith(LABEL_SUFFIX)]
    return sorted(found)


def image_of(label_file: Path) -> Path:
    """The image a label file belongs to: the same name with an image suffix instead of `.lines.txt`."""
    stem = label_file.name[: -len(LABEL_SUFFIX)]
    images = [p for p in (label_file.with_name(stem + s) for s in IMAGE_SUFFIXES) if p.is_file()]
    if not images:
        raise FileNotFoundError(f"{label_file}: no image beside it ({', '.join(stem + s for s in IMAGE_SUFFIXES)})")
    if len(images) > 1:
        raise ValueError(f"{label_file}: more than one image beside it ({', '.join(p.name for p in images)})")
    return images[0]


def read_record(root: Path, label_file: Path) -> LaneRecord:
    """One frame: its lanes at the rows of its image's height, left to right at the bottom, raw_file under `root`."""
    image = image_of(label_file)
    try:
        with Image.open(image) as im:
            width, height = im.size
    except (OSError, ValueError) as exc:
        raise OSError(f"cannot read image {image}: {exc}") from None
    rows = rows_for_height(height)
    lanes = [resample(points, rows, width) for points in read_lanes(label_file)]
    lanes = sorted((lane for lane in lanes if max(lane) >= 0), key=lambda lane: [x for x in lane if x >= 0][-1])
    return LaneRecord(image.relative_to(root).as_posix(), rows, tuple(lanes))


def read_folder(root: str | os.PathLike, label_files: Sequence[Path] | None = None) -> list[LaneRecord]:
    """Every frame of a CULane folder (or of the given label files under it), in label file order."""
    root = Path(root)
    return [read_record(root, f) for f in (find_label_files(root) if label_files is None else label_files)]
