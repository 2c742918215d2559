"""Find lanes in an image, a folder of images or a video; save overlays and tuSimple predictions."""

from __future__ import annotations

import math
import os
import sys
from collections import Counter
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Iterator, Protocol

import cv2
import numpy as np
from tqdm import tqdm

from .evaluate import read_rgb
from .inference import Detection, LaneDetector
from .preprocess import Preprocessing
from .tusimple import H_SAMPLES, LaneRecord, write_records
from .visualize import draw_detection

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
TUSIMPLE_HEIGHT = 720  # images this tall are sampled at tuSimple's own rows
ROW_STEP = 10
DEFAULT_FPS = 30.0
PREDICTIONS_FILE = "predictions.json"
OVERLAY_FOLDER = "overlays"


@dataclass
class PredictSummary:
    """What a prediction run did: frame count, output paths, lanes found, median per-frame time in ms."""

    frames: int
    predictions: Path
    overlays: Path  # a folder of .jpg overlays, or the overlay video
    lanes_found: int
    median_ms: float

    def describe(self) -> str:
        """A few lines for people: counts, speed and where the outputs are."""
        return "\n".join([
            f"frames={self.frames} lanes={self.lanes_found} "
            f"({self.lanes_found / max(self.frames, 1):.2f} per frame) median={self.median_ms:.1f} ms/frame",
            f"predictions: {self.predictions}",
            f"overlays: {self.overlays}",
        ])


class _Source(Protocol):
    """Frames to predict, named by their tuSimple raw_file, and the place their overlays go."""

    overlays: Path
    count: int | None  # frames expected, None when unknown

    def frames(self) -> Iterator[tuple[str, np.ndarray]]: ...

    def save(self, raw_file: str, overlay: np.ndarray) -> None: ...

    def close(self) -> None: ...


class _Images:
    """Image files under `root`; overlays mirror their relative paths under OUT/overlays as .jpg."""

    def __init__(self, root: Path, files: list[Path], out: Path) -> None:
        self.root = root
        self.overlays = out / OVERLAY_FOLDER
        self.count = len(files)
        self.files = {f.relative_to(root).as_posix(): f for f in files}
        self.targets = _overlay_names(list(self.files))

    def frames(self) -> Iterator[tuple[str, np.ndarray]]:
        """(path relative to root, RGB image) in sorted order."""
        for raw_file, path in self.files.items():
            yield raw_file, read_rgb(path)

    def save(self, raw_file: str, overlay: np.ndarray) -> None:
        """Write one overlay JPEG."""
        path = self.overlays / self.targets[raw_file]
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR)):
            raise OSError(f"cannot write overlay {path}")

    def close(self) -> None:
        """Nothing is held open."""


class _Video:
    """The frames of one video file; overlays go to OUT/<stem>_lanes.mp4 at the source frame rate."""

    def __init__(self, path: Path, out: Path) -> None:
        self.path = path
        self.capture = cv2.VideoCapture(str(path))
        if not self.capture.isOpened():
            raise ValueError(f"cannot open video {path}: expected a readable {', '.join(VIDEO_SUFFIXES)} file")
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if math.isfinite(fps) and fps > 0 else DEFAULT_FPS
        frames = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.count = frames if frames > 0 else None
        self.overlays = out / f"{path.stem}_lanes.mp4"
        self.writer: cv2.VideoWriter | None = None

    def frames(self) -> Iterator[tuple[str, np.ndarray]]:
        """('<file name>#<frame index>', RGB frame) until the video ends."""
        index = 0
        while True:
            ok, frame = self.capture.read()
            if not ok:
                break
            yield f"{self.path.name}#{index}", cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
        if index == 0:
            raise ValueError(f"video {self.path} has no frames that can be decoded")

    def save(self, raw_file: str, overlay: np.ndarray) -> None:
        """Append one frame to the overlay video (opened on the first frame, at its size)."""
        if self.writer is None:
            self.overlays.parent.mkdir(parents=True, exist_ok=True)
            size = (overlay.shape[1], overlay.shape[0])
            self.writer = cv2.VideoWriter(str(self.overlays), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, size)
            if not self.writer.isOpened():
                raise OSError(f"cannot write video {self.overlays}")
        self.writer.write(cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        """Release the input and finish the overlay video."""
        self.capture.release()
        if self.writer is not None:
            self.writer.release()


def _overlay_names(raw_files: list[str]) -> dict[str, str]:
    """Overlay path of each image: the same path as .jpg, or `name.ext.jpg` where images would share one."""
    natural = {raw_file: Path(raw_file).with_suffix(".jpg").as_posix() for raw_file in raw_files}
    claims = Counter(natural.values())
    return {r: t if claims[t] == 1 or r == t else r + ".jpg" for r, t in natural.items()}


def _is_under(path: Path, folder: Path) -> bool:
    """Whether `path` lies inside `folder` (both resolved)."""
    return folder == path or folder in path.parents


def _find_images(folder: Path, out: Path) -> list[Path]:
    """Image files under a folder, recursively, sorted; overlays of an earlier run inside it are skipped."""
    overlays = (out / OVERLAY_FOLDER).resolve()
    files = sorted(
        p for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not _is_under(p.resolve(), overlays)
    )
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in folder {folder}")
    return files


def open_source(input: str | os.PathLike, out_dir: str | os.PathLike) -> _Source:
    """An image, a folder of images or a video, with its overlay destination under out_dir."""
    path, out = Path(input), Path(out_dir)
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path} (expected an image, a folder of images or a video)")
    if path.is_dir():
        return _Images(path, _find_images(path, out), out)
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return _Images(path.parent, [path], out)
    if suffix in VIDEO_SUFFIXES:
        return _Video(path, out)
    raise ValueError(
        f"cannot predict {path}: expected an image ({', '.join(IMAGE_SUFFIXES)}), "
        f"a folder of images or a video ({', '.join(VIDEO_SUFFIXES)})"
    )


def sample_rows(height: int, prep: Preprocessing) -> tuple[int, ...]:
    """tuSimple's h_samples for 720-row images, else every 10th row from the crop line to the bottom."""
    if height == TUSIMPLE_HEIGHT:
        return tuple(H_SAMPLES)
    first = -(-prep.crop_rows(height) // ROW_STEP) * ROW_STEP  # first multiple of 10 at or below the crop line
    return tuple(range(first, height, ROW_STEP))


def to_record(raw_file: str, detection: Detection, prep: Preprocessing) -> LaneRecord:
    """One tuSimple prediction line: each lane's x at the image's sample rows, run_time in ms."""
    width, height = detection.image_size
    return LaneRecord.of_lanes(raw_file, sample_rows(height, prep), detection.lanes, width, detection.timings["total"])


def _batches(frames: Iterator[tuple[str, np.ndarray]], size: int) -> Iterator[list[tuple[str, np.ndarray]]]:
    """Consecutive lists of at most `size` frames (only one list is held at a time)."""
    while batch := list(islice(frames, size)):
        yield batch


def _check_positive(name: str, value: int | None) -> None:
    """ValueError unless value is None or a positive int."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def predict_path(
    detector: LaneDetector,
    input: str | os.PathLike,
    out_dir: str | os.PathLike,
    batch_size: int = 8,
    max_frames: int | None = None,
    progress: bool = True,
) -> PredictSummary:
    """Detect lanes in an image, a folder (recursive) or a video; write overlays and OUT/predictions.json."""
    _check_positive("batch_size", batch_size)
    _check_positive("max_frames", max_frames)
    source = open_source(input, out_dir)
    detector.warm_up(batch_size=batch_size)  # keep one-off set-up out of the first frames' run_time
    totals: list[float] = []
    lane_counts: list[int] = []
    expected = min(filter(None, (source.count, max_frames)), default=None)
    bar = tqdm(total=expected, unit="frame", file=sys.stderr, disable=not progress, desc="predict")

    def records() -> Iterator[LaneRecord]:
        """Run each batch, save its overlays and yield its prediction lines."""
        for batch in _batches(islice(source.frames(), max_frames), batch_size):
            for (raw_file, image), detection in zip(batch, detector([image for _, image in batch])):
                source.save(raw_file, draw_detection(image, detection))
                totals.append(detection.timings["total"])
                lane_counts.append(len(detection.lanes))
                bar.update()
                yield to_record(raw_file, detection, detector.prep)

    try:
        predictions = write_records(Path(out_dir) / PREDICTIONS_FILE, records())
    finally:
        bar.close()
        source.close()
    return PredictSummary(len(totals), predictions, source.overlays, sum(lane_counts), float(np.median(totals)))
