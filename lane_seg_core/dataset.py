"""The tuSimple dataset: images with lane masks and instance maps drawn at the training resolution.

A folder of CULane labels (`*.lines.txt`) is read too, into the same records (lane_seg_core.labels).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple, Sequence

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .labels import read_folder
from .preprocess import Preprocessing, normalise
from .tusimple import LaneRecord, read_records


class Sample(NamedTuple):
    image: torch.Tensor  # float [3,H,W], normalised
    binary: torch.Tensor  # long [H,W], 1 = lane pixel
    instances: torch.Tensor  # long [H,W], 0 = background, 1..K lanes left to right at the bottom


@dataclass(frozen=True)
class Augmentation:
    """Random joint geometric (image and lanes) and photometric changes for training."""

    flip_prob: float = 0.5
    max_rotate_deg: float = 3.0
    scale_range: tuple[float, float] = (0.92, 1.08)
    max_shift: tuple[float, float] = (0.06, 0.04)  # fraction of input width, height
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    noise_std: float = 6.0  # grey levels
    blur_prob: float = 0.15

    def to_dict(self) -> dict:
        return asdict(self)


class TuSimpleDataset(Dataset):
    """Frames of tuSimple label files (`label_data_*.json` / `test_label.json`) or CULane `*.lines.txt` under `root`.

    Lanes are drawn at the network input size with `lane_thickness` pixels. With `augment`, the
    random changes of frame i in epoch e depend only on (seed, e, i): call `set_epoch` each epoch.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        prep: Preprocessing,
        lane_thickness: int = 3,
        augment: Augmentation | None = None,
        seed: int = 0,
        label_files: Sequence[str | os.PathLike] | None = None,
    ) -> None:
        if lane_thickness < 1:
            raise ValueError(f"lane_thickness must be >= 1 pixel, got {lane_thickness}")
        self.root = Path(root)
        self.prep = prep
        self.lane_thickness = lane_thickness
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        if label_files:
            self.records: list[LaneRecord] = [r for f in label_files for r in read_records(f)]
        else:
            self.records = read_folder(self.root)
        if not self.records:
            raise ValueError(f"no frames in {', '.join(map(str, label_files or [self.root]))}")
        missing = [r.raw_file for r in self.records if not (self.root / r.raw_file).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} image(s) listed in the labels are missing, first: {self.root / missing[0]}"
            )

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draw of this epoch."""
        self.epoch = epoch

    def image_path(self, index: int) -> Path:
        return self.root / self.records[index].raw_file

    def __getitem__(self, index: int) -> Sample:
        record = self.records[index]
        image, (width, height) = load_rgb(self.image_path(index), self.prep)
        geometry = self.prep.geometry(width, height)
        lanes = [geometry.to_input(_present_points(lane, record.h_samples)) for lane in record.lanes]
        lanes = [lane for lane in lanes if len(lane) >= 2]
        if self.augment is not None:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            image, lanes = augment_geometry(image, lanes, self.augment, rng)
            image = augment_photometric(image, self.augment, rng)
        instances = draw_instances(lanes, self.prep.input_size, self.lane_thickness)
        instances_t = torch.from_numpy(instances).long()
        return Sample(normalise(torch.from_numpy(image), self.prep), (instances_t > 0).long(), instances_t)


def _present_points(lane: Sequence[float], h_samples: Sequence[int]) -> np.ndarray:
    pts = [(x, y) for x, y in zip(lane, h_samples) if x >= 0]
    return np.asarray(pts, dtype=np.float64).reshape(-1, 2)


def load_rgb(path: Path, prep: Preprocessing) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode a JPEG/PNG straight to the input size (cropped, RGB uint8) and return its original (w, h)."""
    try:
        with Image.open(path) as im:
            size = im.size
            # JPEG DCT scaling: decode at 1/2, 1/4 or 1/8 size when that still exceeds the target.
            im.draft("RGB", (prep.input_width, int(prep.input_height / (1 - prep.crop_top))))
            rgb = np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise OSError(f"cannot read image {path}: {exc}") from None
    top = int(round(prep.crop_top * rgb.shape[0]))
    rgb = cv2.resize(rgb[top:], prep.input_size, interpolation=cv2.INTER_AREA)
    return rgb, size


def augment_geometry(
    image: np.ndarray, lanes: list[np.ndarray], aug: Augmentation, rng: np.random.Generator
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Apply one random similarity transform (and maybe a flip) to the image and the lane points."""
    height, width = image.shape[:2]
    angle = rng.uniform(-aug.max_rotate_deg, aug.max_rotate_deg)
    scale = rng.uniform(*aug.scale_range)
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, scale)
    matrix[0, 2] += rng.uniform(-aug.max_shift[0], aug.max_shift[0]) * width
    matrix[1, 2] += rng.uniform(-aug.max_shift[1], aug.max_shift[1]) * height
    if rng.random() < aug.flip_prob:
        flip = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        matrix = (flip @ np.vstack([matrix, [0, 0, 1]]))[:2]
    image = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    lanes = [lane @ matrix[:, :2].T + matrix[:, 2] for lane in lanes]
    return image, lanes


def augment_photometric(image: np.ndarray, aug: Augmentation, rng: np.random.Generator) -> np.ndarray:
    """Random brightness, contrast, saturation, noise and blur on an RGB uint8 image."""
    x = image.astype(np.float32)
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * rng.uniform(1 - aug.saturation, 1 + aug.saturation)
    x = (x - x.mean()) * rng.uniform(1 - aug.contrast, 1 + aug.contrast) + x.mean()
    x = x * rng.uniform(1 - aug.brightness, 1 + aug.brightness)
    if aug.noise_std > 0:
        x += rng.normal(0.0, rng.uniform(0, aug.noise_std), size=x.shape).astype(np.float32)
    if rng.random() < aug.blur_prob:
        x = cv2.GaussianBlur(x, (3, 3), 0)
    return np.clip(x, 0, 255).astype(np.uint8)


def draw_instances(lanes: list[np.ndarray], size: tuple[int, int], thickness: int) -> np.ndarray:
    """Draw lane polylines ([N,2] input pixels) as ids 1..K, left to right at the bottom; uint8 [H,W]."""
    width, height = size
    instances = np.zeros((height, width), dtype=np.uint8)
    # Order by x where each lane is lowest in the image (lanes leaving at a side end higher up).
    order = sorted(range(len(lanes)), key=lambda i: lanes[i][np.argmax(lanes[i][:, 1]), 0])
    shift = 4  # sub-pixel vertices for cv2 drawing
    # cv2's own thick lines are wider than asked (thickness 3 paints 5 pixels): draw one pixel wide, then dilate.
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (thickness, thickness))
    for lane_id, i in enumerate(order, start=1):
        line = np.zeros_like(instances)
        pts = np.round(lanes[i] * (1 << shift)).astype(np.int32)
        cv2.polylines(line, [pts], isClosed=False, color=1, thickness=1, shift=shift)
        instances[cv2.dilate(line, kernel) > 0] = lane_id
    return instances
