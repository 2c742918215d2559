"""From network outputs to lanes: lane-pixel threshold, embedding clustering, polyline fit."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import cv2
import numpy as np
import torch

from .clustering import CLUSTER_METHODS, cluster, cluster_embeddings  # noqa: F401  (cluster_embeddings: public API)
from .preprocess import InputGeometry
from .settings import Bounds, check_settings, setting
from .tusimple import ABSENT


@dataclass(frozen=True)
class PostprocessConfig:
    """Settings that turn outputs into lanes; stored in every checkpoint, overridable at run time."""

    lane_threshold: float = setting(0.5, "lane probability above which a pixel is a lane pixel",
                                    Bounds(0.0, 1.0, open_low=True, open_high=True))
    bandwidth: float = setting(1.0, "clustering radius of one lane in embedding space (2 x delta_var of training)",
                               Bounds(0.0, None, open_low=True))
    min_pixels: int = setting(20, "lanes with fewer lane pixels at the network input are dropped", Bounds(1, 10**7))
    poly_degree: int = setting(2, "degree of the x(y) polynomial fitted to each lane", Bounds(1, 5))
    max_lanes: int = setting(6, "keep at most this many lanes (the largest)", Bounds(1, 255))
    extend_to_bottom: bool = setting(True, "continue each lane straight down to the image bottom (lanes start at "
                                           "the car)")
    polyline_step: float = setting(10.0, "image rows between two points of a lane polyline", Bounds(0.5, 100.0))
    cluster_method: str = setting("meanshift", "meanshift (fast, torch); dbscan or sklearn_meanshift (slow "
                                               "references)")

    def __post_init__(self) -> None:
        check_settings(self)
        if self.cluster_method not in CLUSTER_METHODS:
            raise ValueError(
                f"PostprocessConfig.cluster_method must be one of {', '.join(CLUSTER_METHODS)}, got '{self.cluster_method}'"
            )

    @classmethod
    def from_dict(cls, d: Mapping) -> "PostprocessConfig":
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Lane:
    """One lane instance; `points` float32 [N,2] (x, y) image pixels from the bottom of the image up.

    `id` numbers the lanes of an image 1, 2, ... left to right at the image bottom; `position` is the
    lane's place relative to the ego vehicle (..., -2, -1 left of the image centre, 1, 2, ... right of
    it); `confidence` is the mean lane probability of its pixels; `pixel_count` counts its network-input
    pixels; `ground_points` float32 [M,2] are metres (x forward, y left) when a ground plane is set.
    """

    id: int
    points: np.ndarray
    confidence: float
    pixel_count: int
    position: int = 0
    ground_points: np.ndarray | None = None

    def resample(self, rows: Sequence[int], image_width: int) -> list[float]:
        """x at each row (tuSimple `h_samples`), ABSENT outside the lane's rows or the image."""
        ys, xs = self.points[::-1, 1].astype(np.float64), self.points[::-1, 0].astype(np.float64)  # ascending y
        rows = np.asarray(rows, dtype=np.float64)
        at_rows = np.interp(rows, ys, xs)
        valid = (rows >= ys[0]) & (rows <= ys[-1]) & (at_rows >= 0) & (at_rows < image_width)
        return [round(float(x), 1) if ok else float(ABSENT) for x, ok in zip(at_rows, valid)]


@dataclass
class LaneExtraction:
    """Lanes of one image, the network-input label map (uint8 [h,w], 0 or the lane id), stage times in ms."""

    lanes: list[Lane]
    label_map: np.ndarray
    timings: dict[str, float]


def extract_lanes(
    lane_prob: torch.Tensor,
    embedding: torch.Tensor,
    geometry: InputGeometry,
    image_size: tuple[int, int],
    config: PostprocessConfig,
) -> LaneExtraction:
    """lane_prob [H,W] and embedding [D,H,W] of one image -> lanes left to right at the image bottom."""
    start = time.perf_counter()
    label_map = np.zeros(tuple(lane_prob.shape), dtype=np.uint8)
    ys, xs = torch.nonzero(lane_prob > config.lane_threshold, as_tuple=True)
    if ys.numel() < config.min_pixels:
        return LaneExtraction([], label_map, {"cluster": (time.perf_counter() - start) * 1e3, "fit": 0.0})
    labels = cluster(embedding[:, ys, xs].T, config.cluster_method, config.bandwidth, config.min_pixels)
    probs = lane_prob[ys, xs]
    ys_np, xs_np, labels_np, probs_np = (t.cpu().numpy() for t in (ys, xs, labels, probs))
    clustered = time.perf_counter()
    labels_np = merge_fragments(ys_np, xs_np, labels_np)

    fitted = []  # (bottom x, cluster, lane)
    for k in range(int(labels_np.max()) + 1 if labels_np.size else 0):
        sel = labels_np == k
        fit = _fit_lane(xs_np[sel], ys_np[sel], float(probs_np[sel].mean()), geometry, image_size, config)
        if fit is not None:
            fitted.append((fit[0], k, fit[1]))
    fitted.sort(key=lambda item: item[2].pixel_count, reverse=True)
    fitted = sorted(fitted[: config.max_lanes], key=lambda item: item[0])
    centre = image_size[0] / 2.0
    left = sum(bottom_x < centre for bottom_x, _, _ in fitted)
    lane_of_cluster = np.zeros(int(labels_np.max()) + 2, dtype=np.uint8)  # index label + 1; noise -> 0
    for i, (_, k, lane) in enumerate(fitted):
        lane.id = i + 1
        lane.position = i - left if i < left else i - left + 1  # ..., -2, -1 | 1, 2, ...
        lane_of_cluster[k + 1] = lane.id
    label_map[ys_np, xs_np] = lane_of_cluster[labels_np + 1]
    lanes = [lane for _, _, lane in fitted]
    timings = {"cluster": (clustered - start) * 1e3, "fit": (time.perf_counter() - clustered) * 1e3}
    return LaneExtraction(lanes, label_map, timings)


def merge_fragments(
    ys: np.ndarray, xs: np.ndarray, labels: np.ndarray, tolerance: float = 2.0, reach: float = 0.3
) -> np.ndarray:
    """Relabel clusters that lie on a bigger cluster's curve as that cluster; [N] labels in, [N] labels out.

    Where two lanes touch, or along a long lane whose embedding drifts, a few pixels can form a cluster of
    their own. If most of a cluster's row centroids (input pixels) sit within `tolerance` columns of a bigger
    cluster's x(y) fit, extended by `reach` of that cluster's height, it is a piece of that lane.
    """
    count = int(labels.max()) + 1 if labels.size else 0
    if count < 2:
        return labels
    sizes = np.bincount(labels[labels >= 0], minlength=count)
    kept: list[tuple[int, float, float, np.ndarray]] = []  # (label, first row, last row, x(y) coefficients)
    target = np.arange(count)
    for k in np.argsort(-sizes, kind="stable"):
        sel = labels == k
        rows, inverse, counts = np.unique(ys[sel], return_inverse=True, return_counts=True)
        centres = np.bincount(inverse, weights=xs[sel]) / counts
        for label, first, last, coefficients in kept:
            margin = reach * (last - first)
            near = (rows >= first - margin) & (rows <= last + margin)
            if near.mean() >= 0.8 and _median(np.abs(np.polyval(coefficients, rows[near]) - centres[near])) <= tolerance:
                target[k] = label
                break
        else:
            if len(rows) >= 3:
                degree = 2 if rows[-1] - rows[0] >= 32 else 1
                kept.append((int(k), float(rows[0]), float(rows[-1]), _polyfit(rows, centres, np.ones(len(rows)), degree)))
    if np.array_equal(target, np.arange(count)):
        return labels
    merged = np.where(labels >= 0, target[np.maximum(labels, 0)], -1)
    _, dense = np.unique(merged, return_inverse=True)  # renumber 0..K-1 (-1 stays first, then shifted)
    return dense.reshape(merged.shape) - int((merged < 0).any())


def instance_mask(label_map: np.ndarray, geometry: InputGeometry, image_size: tuple[int, int]) -> np.ndarray:
    """Network-input label map uint8 [h,w] -> uint8 [H,W] at the image size (cropped rows are background)."""
    width, height = image_size
    mask = np.zeros((height, width), dtype=np.uint8)
    # pixel-centre aligned nearest neighbour, the same convention as InputGeometry
    mask[geometry.top:] = cv2.resize(label_map, (width, height - geometry.top), interpolation=cv2.INTER_NEAREST_EXACT)
    return mask


def _fit_lane(
    xs: np.ndarray, ys: np.ndarray, confidence: float, geometry: InputGeometry,
    image_size: tuple[int, int], config: PostprocessConfig,
) -> tuple[float, Lane] | None:
    """Fit x(y) through the row centroids of one cluster's input pixels; (x at the image bottom, the lane)."""
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
    step = config.polyline_step
    sample_ys = np.append(np.arange(bottom, top, -step), top)  # every `step` rows, and the lane's far end
    sample_xs = np.polyval(coefficients, sample_ys)
    # Dashes and occluders leave gaps near the car; continue along the lane's lowest part (the near field
    # is straight), fitted on its own so that a curve further up does not bend the extension.
    near = y >= bottom - 0.15 * image_size[1]
    if near.sum() >= 3:
        slope = _polyfit(y[near], np.polyval(coefficients, y[near]), weight[near], 1)[0]
    else:
        slope = np.polyval(np.polyder(coefficients), bottom)
    image_bottom = image_size[1] - 1.0
    bottom_x = float(sample_xs[0] + slope * (image_bottom - bottom))
    if config.extend_to_bottom and bottom < image_bottom:
        extra_ys = np.arange(image_bottom, bottom, -step)
        sample_ys = np.concatenate([extra_ys, sample_ys])
        sample_xs = np.concatenate([sample_xs[0] + slope * (extra_ys - bottom), sample_xs])
    inside = (sample_xs >= -0.5) & (sample_xs <= image_size[0] - 0.5)  # a shallow lane leaves at the side
    if inside.sum() < 2:
        return None
    points = np.stack([sample_xs[inside], sample_ys[inside]], axis=1).astype(np.float32)
    return bottom_x, Lane(0, points, confidence, int(len(xs)))


def robust_polyfit(
    y: np.ndarray, x: np.ndarray, weight: np.ndarray, degree: int, min_tolerance: float, rounds: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted polynomial x(y) that drops points far from the fit (beyond 3 robust sigmas); coefficients, inliers."""
    inliers = np.ones(len(y), dtype=bool)
    coefficients = _polyfit(y, x, weight, degree)
    for _ in range(rounds):
        residual = np.abs(np.polyval(coefficients, y) - x)
        tolerance = max(3.0 * 1.4826 * _median(residual[inliers]), min_tolerance)
        keep = residual <= tolerance
        if keep.sum() <= degree + 1 or np.array_equal(keep, inliers):
            break
        inliers = keep
        coefficients = _polyfit(y[inliers], x[inliers], weight[inliers], degree)
    return coefficients, inliers


def _polyfit(y: np.ndarray, x: np.ndarray, weight: np.ndarray, degree: int) -> np.ndarray:
    """Weighted least-squares x(y), coefficients highest power first (np.polyfit without its checks: 2x faster)."""
    vander = np.vander(y.astype(np.float64), degree + 1)
    return np.linalg.lstsq(vander * weight[:, None], x * weight, rcond=None)[0]


def _median(values: np.ndarray) -> float:
    """np.median of a 1-D array, by partitioning (a quarter of its cost on the small arrays used here)."""
    half = len(values) // 2
    if len(values) % 2:
        return float(np.partition(values, half)[half])
    low, high = np.partition(values, [half - 1, half])[half - 1 : half + 1]
    return 0.5 * float(low + high)
