"""From network outputs to lanes: lane-pixel threshold, embedding clustering, polyline fit."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from .preprocess import InputGeometry
from .tusimple import ABSENT


@dataclass(frozen=True)
class PostprocessConfig:
    """Settings that turn outputs into lanes; stored in every checkpoint, overridable at run time."""

    lane_threshold: float = 0.5  # lane probability above which a pixel belongs to a lane
    bandwidth: float = 1.0  # embedding radius of one lane around its centre (the paper: 2 * delta_var)
    min_pixels: int = 20  # clusters with fewer network-input pixels are dropped
    poly_degree: int = 2  # degree of the x(y) polynomial fitted to each lane
    max_lanes: int = 6  # keep at most this many lanes, the largest ones
    extend_to_bottom: bool = True  # continue each lane straight down to the image bottom (lanes start at the car)

    def __post_init__(self) -> None:
        _check_range("lane_threshold", self.lane_threshold, 0.0, 1.0, open_low=True, open_high=True)
        _check_range("bandwidth", self.bandwidth, 0.0, float("inf"), open_low=True)
        _check_range("min_pixels", self.min_pixels, 1, 10**7)
        _check_range("poly_degree", self.poly_degree, 1, 5)
        _check_range("max_lanes", self.max_lanes, 1, 255)

    @classmethod
    def from_dict(cls, d: Mapping) -> "PostprocessConfig":
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


def _check_range(name: str, value: float, low: float, high: float, open_low: bool = False, open_high: bool = False):
    too_low = value <= low if open_low else value < low
    too_high = value >= high if open_high else value > high
    if too_low or too_high:
        interval = f"{'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
        raise ValueError(f"PostprocessConfig.{name} must be in {interval}, got {value}")


@dataclass
class Lane:
    """One lane instance; `points` float32 [N,2] (x, y) image pixels from the bottom of the image up."""

    id: int
    points: np.ndarray
    confidence: float
    pixel_count: int

    def resample(self, rows: Sequence[int], image_width: int) -> list[float]:
        """x at each row (tuSimple `h_samples`), ABSENT outside the lane's rows or the image."""
        ys, xs = self.points[::-1, 1].astype(np.float64), self.points[::-1, 0].astype(np.float64)  # ascending y
        rows = np.asarray(rows, dtype=np.float64)
        at_rows = np.interp(rows, ys, xs)
        valid = (rows >= ys[0]) & (rows <= ys[-1]) & (at_rows >= 0) & (at_rows < image_width)
        return [round(float(x), 1) if ok else float(ABSENT) for x, ok in zip(at_rows, valid)]


def cluster_embeddings(
    embedding: torch.Tensor, bandwidth: float, min_points: int = 10, max_seed_points: int = 2048, max_clusters: int = 32
) -> torch.Tensor:
    """Group [N,D] embeddings into lanes; returns [N] long labels 0..K-1, -1 for noise, on the same device.

    Greedy mean shift on at most `max_seed_points` evenly spaced points: start at the densest
    unassigned point, move the centre to the mean of the points within `bandwidth` until it settles,
    keep it, repeat. Then every point joins its nearest centre if it lies within `bandwidth`.
    """
    n = embedding.shape[0]
    labels = torch.full((n,), -1, dtype=torch.long, device=embedding.device)
    if n < min_points:
        return labels
    x = embedding.float()
    stride = -(-n // max_seed_points)
    sample = x[::stride]
    density = (torch.cdist(sample, sample) < bandwidth).sum(dim=1)
    unassigned = torch.ones(len(sample), dtype=torch.bool, device=x.device)
    centres = []
    while len(centres) < max_clusters and int(unassigned.sum()) * stride >= min_points:
        seed = torch.where(unassigned, density, -1).argmax()
        centre = sample[seed]
        for _ in range(10):
            new_centre = sample[unassigned & ((sample - centre).norm(dim=1) < bandwidth)].mean(dim=0)
            if (new_centre - centre).norm() < 1e-3 * bandwidth:
                break
            centre = new_centre
        members = unassigned & ((sample - centre).norm(dim=1) < bandwidth)
        members[seed] = True
        if int(members.sum()) * stride >= min_points:
            centres.append(centre)
        unassigned &= ~members
    if not centres:
        return labels
    distance, nearest = torch.cdist(x, torch.stack(centres)).min(dim=1)
    nearest = torch.where(distance < bandwidth, nearest, -1)
    counts = torch.bincount(nearest[nearest >= 0], minlength=len(centres))
    keep = counts >= min_points
    new_ids = torch.cumsum(keep.long(), 0) - 1  # contiguous ids for the clusters that stay
    valid = nearest >= 0
    labels[valid] = torch.where(keep[nearest[valid]], new_ids[nearest[valid]], -1)
    return labels


def lanes_from_outputs(
    lane_prob: torch.Tensor,
    embedding: torch.Tensor,
    geometry: InputGeometry,
    image_size: tuple[int, int],
    config: PostprocessConfig,
) -> list[Lane]:
    """lane_prob [H,W] and embedding [D,H,W] of one image -> lanes left to right at the bottom."""
    mask = lane_prob > config.lane_threshold
    ys, xs = torch.nonzero(mask, as_tuple=True)
    if ys.numel() < config.min_pixels:
        return []
    labels = cluster_embeddings(embedding[:, ys, xs].T, config.bandwidth, config.min_pixels)
    probs = lane_prob[ys, xs]
    ys_np, xs_np, labels_np, probs_np = (t.cpu().numpy() for t in (ys, xs, labels, probs))
    lanes = []
    for k in range(int(labels_np.max()) + 1 if labels_np.size else 0):
        sel = labels_np == k
        lane = _fit_lane(xs_np[sel], ys_np[sel], float(probs_np[sel].mean()), geometry, image_size, config)
        if lane is not None:
            lanes.append(lane)
    lanes.sort(key=lambda lane: lane.pixel_count, reverse=True)
    lanes = sorted(lanes[: config.max_lanes], key=lambda lane: lane.points[0, 0])
    for i, lane in enumerate(lanes, start=1):
        lane.id = i
    return lanes


def _fit_lane(
    xs: np.ndarray, ys: np.ndarray, confidence: float, geometry: InputGeometry,
    image_size: tuple[int, int], config: PostprocessConfig, step: float = 5.0,
) -> Lane | None:
    """Fit x(y) through the row centroids of one cluster's input pixels; sample it every `step` image rows."""
    rows, inverse, counts = np.unique(ys, return_inverse=True, return_counts=True)
    if len(rows) < 3:
        return None
    centroids = np.bincount(inverse, weights=xs) / counts
    image_xy = geometry.to_image(np.stack([centroids, rows], axis=1))
    y, x, weight = image_xy[:, 1], image_xy[:, 0], np.sqrt(counts)
    span = y[-1] - y[0]
    # A short lane cannot tell a curve from noise: fit a line unless it spans a quarter of the road image.
    degree = config.poly_degree if span >= 0.25 * (image_size[1] - geometry.top) else 1
    coefficients, inliers = robust_polyfit(y, x, weight, degree, min_tolerance=1.5 / geometry.scale_x)
    if inliers.sum() < 3:
        return None
    y, weight = y[inliers], weight[inliers]
    half_row = 0.5 / geometry.scale_y
    top, bottom = y[0] - half_row, y[-1] + half_row
    sample_ys = np.arange(bottom, top, -step)
    sample_xs = np.polyval(coefficients, sample_ys)
    image_bottom = image_size[1] - 1.0
    if config.extend_to_bottom and bottom < image_bottom:
        # Dashes and occluders leave gaps near the car; continue along the lane's lowest part (the near field
        # is straight), fitted on its own so that a curve further up does not bend the extension.
        near = y >= bottom - 0.15 * image_size[1]
        if near.sum() >= 3:
            slope = np.polyfit(y[near], np.polyval(coefficients, y[near]), 1, w=weight[near])[0]
        else:
            slope = np.polyval(np.polyder(coefficients), bottom)
        extra_ys = np.arange(image_bottom, bottom, -step)
        sample_ys = np.concatenate([extra_ys, sample_ys])
        sample_xs = np.concatenate([sample_xs[0] + slope * (extra_ys - bottom), sample_xs])
    points = np.stack([sample_xs, sample_ys], axis=1).astype(np.float32)
    return Lane(0, points, confidence, int(len(xs)))


def robust_polyfit(
    y: np.ndarray, x: np.ndarray, weight: np.ndarray, degree: int, min_tolerance: float, rounds: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted polynomial x(y) that drops points far from the fit (beyond 3 robust sigmas); coefficients, inliers."""
    inliers = np.ones(len(y), dtype=bool)
    coefficients = np.polyfit(y, x, degree, w=weight)
    for _ in range(rounds):
        residual = np.abs(np.polyval(coefficients, y) - x)
        tolerance = max(3.0 * 1.4826 * float(np.median(residual[inliers])), min_tolerance)
        keep = residual <= tolerance
        if keep.sum() <= degree + 1 or np.array_equal(keep, inliers):
            break
        inliers = keep
        coefficients = np.polyfit(y[inliers], x[inliers], degree, w=weight[inliers])
    return coefficients, inliers
