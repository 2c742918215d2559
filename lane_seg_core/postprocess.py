"""From network outputs to lanes: lane-pixel threshold, embedding clustering, polyline fit, refusing non-lanes."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Mapping, NamedTuple, Sequence

import cv2
import numpy as np
import torch

from .clustering import CLUSTER_METHODS, cluster, one_cpu_thread
from .clustering import cluster_embeddings  # noqa: F401  (public API)
from .plausibility import crossings, lane_confidence, turn_back_cut, vanishing_point
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
    # Absent from checkpoints saved before them: these defaults apply there.
    vp_tolerance: float = setting(0.1, "drop a lane whose near part, extended, misses the lanes' common vanishing "
                                       "point by more than this (its confidence falls well before)",
                                  Bounds(0.0, None, open_low=True), "image heights")
    max_turn_back: float = setting(0.05, "cut a lane where its x turns back by more than this; drop a lane that "
                                         "crosses two others by more than this", Bounds(0.0, None, open_low=True),
                                   "image heights")
    confidence_pixels: float = setting(50.0, "network-input pixels that give a lane 63% of the size factor of its "
                                             "confidence", Bounds(0.0, None, open_low=True))
    min_confidence: float = setting(0.12, "drop lanes whose confidence is lower", Bounds(0.0, 1.0, open_high=True))
    reach_below_vp: float = setting(0.035, "continue each lane along its far end's direction up to this far below "
                                           "the vanishing point, where labelled lanes end (0: lanes end where their pixels do; "
                                           "the median of tuSimple's 13,728 training lanes is 0.038)",
                                    Bounds(0.0, 1.0), "image heights")

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
    it); `confidence` in [0, 1] estimates how likely it is a lane tuSimple's metric matches (its pixels'
    probability, their number, its aim at the vanishing point: plausibility.lane_confidence); `pixel_count`
    counts its network-input pixels; `ground_points` float32 [M,2] are metres (x forward, y left) when a
    ground plane is set.
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
    """Lanes of one image, the network-input label map (uint8 [h,w], 0 or the lane id), stage times in ms, and
    the lanes' common vanishing point (x, y) in image pixels (None when fewer than two lanes fix one)."""

    lanes: list[Lane]
    label_map: np.ndarray
    timings: dict[str, float]
    vanishing_point: tuple[float, float] | None = None


def extract_lanes(
    lane_prob: torch.Tensor,
    embedding: torch.Tensor,
    geometry: InputGeometry,
    image_size: tuple[int, int],
    config: PostprocessConfig,
) -> LaneExtraction:
    """lane_prob [H,W] and embedding [D,H,W] of one image -> lanes left to right at the image bottom."""
    with one_cpu_thread():  # small tensors: see one_cpu_thread
        return _extract_lanes(lane_prob, embedding, geometry, image_size, config)


def _extract_lanes(
    lane_prob: torch.Tensor, embedding: torch.Tensor, geometry: InputGeometry, image_size: tuple[int, int],
    config: PostprocessConfig,
) -> LaneExtraction:
    """extract_lanes on the current thread settings."""
    start = time.perf_counter()
    height, width = lane_prob.shape
    label_map = np.zeros((height, width), dtype=np.uint8)
    prob = lane_prob.cpu().numpy().ravel()  # small: numpy's ops cost a fraction of torch's
    index = np.flatnonzero(prob > config.lane_threshold)  # row-major pixel indices
    if len(index) < config.min_pixels:
        return LaneExtraction([], label_map, {"cluster": (time.perf_counter() - start) * 1e3, "fit": 0.0})
    points = embedding.reshape(embedding.shape[0], -1).index_select(1, torch.from_numpy(index).to(embedding.device)).T
    labels_np = cluster(points, config.cluster_method, config.bandwidth, config.min_pixels).cpu().numpy()
    probs_np = prob[index]
    clustered = time.perf_counter()
    ys_np, xs_np = np.divmod(index, width)

    count = int(labels_np.max()) + 1
    if count == 0:
        return LaneExtraction([], label_map, {"cluster": (clustered - start) * 1e3, "fit": 0.0})
    valid = labels_np >= 0
    counts, sums = _row_sums(ys_np, xs_np, labels_np, count, height)
    prob_sums = np.bincount(labels_np[valid], weights=probs_np[valid], minlength=count)
    group = _merge_targets(counts, sums)  # cluster -> its lane
    if not np.array_equal(group, np.arange(count)):
        _, group = np.unique(group, return_inverse=True)  # lanes 0..G-1
        counts, sums, prob_sums = (_sum_groups(a, group) for a in (counts, sums, prob_sums))
    confidence = prob_sums / counts.sum(axis=1)

    fits, point = _fit_lanes(counts, sums, confidence, geometry, image_size, config)
    fitted = [(fit[0], g, fit[1], fit[2]) for g, fit in enumerate(fits) if fit is not None]
    fitted.sort(key=lambda item: item[2].pixel_count, reverse=True)
    fitted = sorted(fitted[: config.max_lanes], key=lambda item: item[0])
    centre = image_size[0] / 2.0
    left = sum(item[0] < centre for item in fitted)
    lane_of_group = np.zeros(len(counts), dtype=np.uint8)
    first_row = np.zeros(len(fitted) + 1, dtype=np.int64)  # by lane id: its pixels above this row are cut off
    for i, (_, g, lane, row) in enumerate(fitted):
        lane.id = i + 1
        lane.position = i - left if i < left else i - left + 1  # ..., -2, -1 | 1, 2, ...
        lane_of_group[g] = lane.id
        first_row[lane.id] = row
    lane_of_cluster = np.concatenate([[0], lane_of_group[group]]).astype(np.uint8)  # index label + 1; noise -> 0
    pixel_lane = lane_of_cluster[labels_np + 1]
    label_map[ys_np, xs_np] = np.where(ys_np >= first_row[pixel_lane], pixel_lane, 0)
    lanes = [item[2] for item in fitted]
    timings = {"cluster": (clustered - start) * 1e3, "fit": (time.perf_counter() - clustered) * 1e3}
    return LaneExtraction(lanes, label_map, timings, point)


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
    target = _merge_targets(*_row_sums(ys, xs, labels, count, int(ys.max()) + 1), tolerance, reach)
    if np.array_equal(target, np.arange(count)):
        return labels
    merged = np.where(labels >= 0, target[np.maximum(labels, 0)], -1)
    _, dense = np.unique(merged, return_inverse=True)  # renumber 0..K-1 (-1 stays first, then shifted)
    return dense.reshape(merged.shape) - int((merged < 0).any())


def _row_sums(
    ys: np.ndarray, xs: np.ndarray, labels: np.ndarray, count: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of each cluster in each input row and the sums of their columns, float64 [count, height] each."""
    valid = labels >= 0
    key = labels[valid] * height + ys[valid].astype(np.int64)  # rows are whole pixels
    counts = np.bincount(key, minlength=count * height).reshape(count, height).astype(np.float64)
    sums = np.bincount(key, weights=xs[valid], minlength=count * height).reshape(count, height)
    return counts, sums


def _sum_groups(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Rows of `values` [K,...] summed by `group` [K] (0..G-1) -> [G,...]."""
    out = np.zeros((int(group.max()) + 1,) + values.shape[1:])
    np.add.at(out, group, values)
    return out


def _merge_targets(counts: np.ndarray, sums: np.ndarray, tolerance: float = 2.0, reach: float = 0.3) -> np.ndarray:
    """merge_fragments on row sums [K,H]: the label [K] each cluster joins (itself when it stays a lane)."""
    count, height = counts.shape
    present = counts > 0
    n_rows = present.sum(axis=1)
    rows = np.arange(height, dtype=np.float64)
    centres = sums / np.where(present, counts, 1.0)
    first = np.argmax(present, axis=1)
    last = height - 1 - np.argmax(present[:, ::-1], axis=1)
    fittable = n_rows >= 3
    degree = np.where(last - first >= 32, 2, 1)
    points = present & fittable[:, None]
    design = _design(rows, points, 2)
    curves = _least_squares(design, centres, points.astype(np.float64), _used_powers(degree, points))
    # match[j, k]: cluster k lies on cluster j's curve (only pairs where j is bigger and fittable are needed)
    rank = np.empty(count, dtype=np.int64)
    order = np.argsort(-counts.sum(axis=1), kind="stable")  # biggest first
    rank[order] = np.arange(count)
    margin = reach * (last - first)
    near = present[None, :, :] & (rows >= first[:, None, None] - margin[:, None, None]) & (
        rows <= last[:, None, None] + margin[:, None, None])  # [j, k, H]
    with np.errstate(invalid="ignore", divide="ignore"):
        covered = near.sum(axis=2) / n_rows[None, :] >= 0.8
    candidates = np.nonzero(covered & fittable[:, None] & (rank[:, None] < rank[None, :]))
    match = np.zeros((count, count), dtype=bool)
    if len(candidates[0]):
        j, k = candidates
        deviation = np.abs(curves.values(design)[j] - centres[k])
        match[j, k] = _masked_median(deviation, near[j, k]) <= tolerance
    target = np.arange(count)
    kept: list[int] = []
    for k in order:
        into = next((j for j in kept if match[j, k]), None)
        if into is not None:
            target[k] = into
        elif fittable[k]:
            kept.append(int(k))
    return target


def instance_mask(label_map: np.ndarray, geometry: InputGeometry, image_size: tuple[int, int]) -> np.ndarray:
    """Network-input label map uint8 [h,w] -> uint8 [H,W] at the image size (cropped rows are background)."""
    width, height = image_size
    mask = np.zeros((height, width), dtype=np.uint8)
    # pixel-centre aligned nearest neighbour, the same convention as InputGeometry
    mask[geometry.top:] = cv2.resize(label_map, (width, height - geometry.top), interpolation=cv2.INTER_NEAREST_EXACT)
    return mask


def _fit_lanes(
    counts: np.ndarray, sums: np.ndarray, confidence: np.ndarray, geometry: InputGeometry,
    image_size: tuple[int, int], config: PostprocessConfig,
) -> tuple[list[tuple[float, Lane, int] | None], tuple[float, float] | None]:
    """Fit x(y) through the row centroids of each lane's input pixels (row sums [L,h], mean probability
    `confidence` [L]): per lane (bottom x, lane, its first input row) or None when it is not a lane; the
    vanishing point."""
    count, height = counts.shape
    present = counts > 0
    rows = np.arange(height, dtype=np.float64)
    image_xy = geometry.to_image(np.stack([(sums / np.where(present, counts, 1.0)).ravel(), np.tile(rows, count)], 1))
    x, y = image_xy[:, 0].reshape(count, height), image_xy[:height, 1]
    first = np.argmax(present, axis=1)
    last = height - 1 - np.argmax(present[:, ::-1], axis=1)
    fittable = present.sum(axis=1) >= 3
    weight = np.where(present & fittable[:, None], np.sqrt(counts), 0.0)
    # A short lane cannot tell a curve from noise: fit a line unless it spans a quarter of the road image.
    degree = np.where(y[last] - y[first] >= 0.25 * (image_size[1] - geometry.top), config.poly_degree, 1)
    design = _design(y, weight > 0, config.poly_degree)
    curves, inliers = _robust_fit(design, x, weight, degree, min_tolerance=1.5 / geometry.scale_x)
    fittable &= inliers.sum(axis=1) >= 3
    half_row = 0.5 / geometry.scale_y
    top = y[np.argmax(inliers, axis=1)] - half_row
    bottom = y[height - 1 - np.argmax(inliers[:, ::-1], axis=1)] + half_row
    # Dashes and occluders leave gaps near the car; continue along the lane's lowest part (the near field
    # is straight), fitted on its own so that a curve further up does not bend the extension.
    near = inliers & (y >= bottom[:, None] - 0.15 * image_size[1])
    near_weight = np.where(near, weight, 0.0)
    line = _used_powers(np.ones_like(degree), near_weight > 0)
    along = curves.values(design)  # every lane at every input row
    near_line = _least_squares(design, along, near_weight, line)
    slope = np.where(near.sum(axis=1) >= 3, near_line.slope(bottom), curves.slope(bottom))
    verdict = _judge(along, y, inliers, counts, confidence, curves.at_each(bottom), bottom, slope,
                     fittable, image_size, config)
    top = np.maximum(top, verdict.cut)
    fittable = verdict.keep & (top < bottom)
    xs, ys = _polylines(curves, bottom, top, slope, image_size[1] - 1.0, config)
    inside = (xs >= -0.5) & (xs <= image_size[0] - 0.5)  # NaN past the end; a shallow lane leaves at the side
    fittable &= inside.sum(axis=1) >= 2
    bottom_x = curves.at_each(bottom) + slope * (image_size[1] - 1.0 - bottom)
    first_row = np.searchsorted(y, verdict.cut)
    lanes = [(float(bottom_x[i]), Lane(0, _towards(np.stack([xs[i, inside[i]], ys[i, inside[i]]], axis=1),
                                                   verdict.point, image_size, config),
                                       float(verdict.confidence[i]), int(verdict.pixels[i])), int(first_row[i]))
             if fittable[i] else None for i in range(count)]
    return lanes, verdict.point


def _towards(
    points: np.ndarray, point: tuple[float, float] | None, image_size: tuple[int, int], config: PostprocessConfig
) -> np.ndarray:
    """float32 [N,2] lane points (bottom up), continued along the lane's direction at its far end up to
    `reach_below_vp` below the vanishing point (at most 0.2 image heights): the far part of a lane is too thin at
    the network's input size to be found, and tuSimple labels it."""
    if point is None or config.reach_below_vp <= 0 or len(points) < 3:
        return points.astype(np.float32)
    reach = max(point[1] + config.reach_below_vp * image_size[1], points[-1, 1] - 0.2 * image_size[1])
    (x_top, y_top), (x_before, y_before) = points[-1], points[-3]
    if y_top - reach < 1.0 or y_before <= y_top:
        return points.astype(np.float32)
    ys = np.append(np.arange(y_top - config.polyline_step, reach, -config.polyline_step), reach)
    ys = ys[ys < y_top]
    xs = x_top + (x_top - x_before) / (y_top - y_before) * (ys - y_top)
    ahead = np.stack([xs, ys], axis=1)
    ahead = ahead[(xs >= -0.5) & (xs <= image_size[0] - 0.5)]
    return np.concatenate([points, ahead]).astype(np.float32)


class _Verdict(NamedTuple):
    """What the plausibility rules make of L fitted lanes."""

    point: tuple[float, float] | None  # the vanishing point, image pixels
    cut: np.ndarray  # [L] image row above which a lane is cut off; -inf: nowhere
    pixels: np.ndarray  # [L] its input pixels below the cut
    confidence: np.ndarray  # [L] lane_confidence
    keep: np.ndarray  # [L] bool


def _judge(
    x: np.ndarray, y: np.ndarray, inliers: np.ndarray, counts: np.ndarray, probability: np.ndarray,
    anchor: np.ndarray, bottom: np.ndarray, slope: np.ndarray, fittable: np.ndarray, image_size: tuple[int, int],
    config: PostprocessConfig,
) -> _Verdict:
    """The rules of plausibility.py on L lanes: curves x [L,h] at the input rows' image y [h], near lines through
    (anchor, bottom) [L] with `slope` [L]; pixel `counts` [L,h], mean `probability` [L]."""
    width, height = image_size
    tolerance, turn = config.vp_tolerance * height, config.max_turn_back * height
    # the near parts of lanes that reach the car show its heading best; far lanes bend away from it on curves
    weight = np.where(fittable, (counts * inliers).sum(axis=1), 0.0) * (bottom / height) ** 2
    region = (-tolerance, width + tolerance, -tolerance, height + tolerance)  # a camera looking ahead sees it
    point, distance = vanishing_point(anchor, bottom, slope, weight, tolerance, region)
    rows = np.arange(len(y))
    first, last = np.argmax(inliers, axis=1), len(y) - 1 - np.argmax(inliers[:, ::-1], axis=1)
    cut = turn_back_cut(x, y, first, last, turn)
    if point is not None:
        cut = np.maximum(cut, point[1])
    kept = y[None, :] >= cut[:, None]
    pixels = (counts * kept).sum(axis=1)
    confidence = lane_confidence(probability, pixels, distance, config.lane_threshold, config.confidence_pixels,
                                 tolerance)
    missed = np.isfinite(distance) & (distance > tolerance)  # inf: no vanishing point to check against
    keep = fittable & (pixels >= config.min_pixels) & (confidence >= config.min_confidence) & ~missed
    if point is None and (weight > 0).sum() >= 2:
        keep &= np.arange(len(weight)) == np.argmax(weight)  # lanes that meet nowhere ahead: one at most is right
    if keep.sum() >= 3:
        candidates = np.flatnonzero(keep)
        span = kept[candidates] & (rows >= first[candidates, None]) & (rows <= last[candidates, None])
        keep[candidates[crossings(x[candidates], span, turn) >= 2]] = False
    return _Verdict(None if point is None else (float(point[0]), float(point[1])), cut, pixels, confidence, keep)


def _polylines(
    curves: "_Curves", bottom: np.ndarray, top: np.ndarray, slope: np.ndarray, image_bottom: float,
    config: PostprocessConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Each lane's points from the image bottom up, x and y [L,M] (y NaN past a lane's end).

    Every `polyline_step` rows from the lane's bottom up and its far end; below its bottom (extend_to_bottom)
    every `polyline_step` rows up from the image bottom, straight along `slope`.
    """
    step = config.polyline_step
    # as many points as np.arange(bottom, top, -step) and np.arange(image_bottom, bottom, -step) give
    along = np.ceil((top - bottom) / -step).astype(np.int64)
    below = np.maximum(np.ceil((bottom - image_bottom) / -step).astype(np.int64), 0)
    if not config.extend_to_bottom:
        below[:] = 0
    j = np.arange(int((below + along).max()) + 1)[None, :] - below[:, None]  # index along the lane, < 0 below it
    ys = np.where(j < 0, image_bottom + (j + below[:, None]) * -step, bottom[:, None] + j * -step)
    ys = np.where(j == along[:, None], top[:, None], np.where(j > along[:, None], np.nan, ys))
    straight = curves.at_each(bottom)[:, None] + slope[:, None] * (ys - bottom[:, None])
    xs = np.where(j < 0, straight, curves.values_at(ys))
    return xs, ys


def robust_polyfit(
    y: np.ndarray, x: np.ndarray, weight: np.ndarray, degree: int, min_tolerance: float, rounds: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted polynomial x(y) that drops points far from the fit (beyond 3 robust sigmas); coefficients, inliers."""
    y, weight = np.asarray(y, dtype=np.float64), np.asarray(weight, dtype=np.float64)[None]
    usable = max(min(degree, len(np.unique(y[weight[0] > 0])) - 1), 0)  # what the distinct y determine
    design = _design(y, weight > 0, usable)
    curves, inliers = _robust_fit(design, np.asarray(x, dtype=np.float64)[None], weight, np.array([usable]),
                                  min_tolerance, rounds)
    coefficients = curves.coefficients(0)
    return np.concatenate([np.zeros(degree + 1 - len(coefficients)), coefficients]), inliers[0]


def _robust_fit(
    design: "_Design", x: np.ndarray, weight: np.ndarray, degree: np.ndarray, min_tolerance: float, rounds: int = 3
) -> tuple["_Curves", np.ndarray]:
    """robust_polyfit of L curves at once: x, weight [L,H] (weight 0: no point), degree [L]; curves, inliers [L,H]."""
    points = weight > 0
    inliers = points
    used = _used_powers(degree, points)  # refined curves keep more than degree + 1 points: the same powers
    curves = _least_squares(design, x, weight, used)
    active = points.any(axis=1)  # curves still being refined
    for _ in range(rounds):
        residual = np.abs(curves.values(design) - x)
        tolerance = np.maximum(3.0 * 1.4826 * _masked_median(residual, inliers), min_tolerance)
        keep = points & (residual <= tolerance[:, None])
        active &= (keep.sum(axis=1) > degree + 1) & (keep != inliers).any(axis=1)
        if not active.any():
            break
        inliers = np.where(active[:, None], keep, inliers)
        refit = _least_squares(design, x, weight * inliers, used)
        curves = curves._replace(coef=np.where(active[:, None], refit.coef, curves.coef))
    return curves, inliers


class _Design(NamedTuple):
    """Powers of t = (y - centre) / scale at every y of L curves; t spans [-1, 1] over each curve's points."""

    centre: np.ndarray  # [L]
    scale: np.ndarray  # [L]
    powers: np.ndarray  # [2 * degree + 1, L, H]: t**k


def _design(y: np.ndarray, points: np.ndarray, degree: int) -> _Design:
    """The basis for fits of up to `degree` to L curves with points [L,H] at y [H] or [L,H]."""
    count = points.sum(axis=1)
    low, high = np.where(points, y, np.inf).min(axis=1), np.where(points, y, -np.inf).max(axis=1)
    with np.errstate(invalid="ignore"):  # curves without points: inf - inf
        centre = np.where(count > 0, 0.5 * (low + high), 0.0)
        scale = np.where(high > low, 0.5 * (high - low), 1.0)
    t = (y - centre[:, None]) / scale[:, None]
    powers = np.empty((2 * degree + 1,) + points.shape)
    powers[0] = 1.0
    for k in range(1, 2 * degree + 1):
        np.multiply(powers[k - 1], t, out=powers[k])
    return _Design(centre, scale, powers)


class _Curves(NamedTuple):
    """L polynomials x(y) = sum_k coef[:, k] * t**k, t = (y - centre) / scale."""

    coef: np.ndarray  # [L, degree + 1], lowest power first
    centre: np.ndarray  # [L]
    scale: np.ndarray  # [L]

    def values(self, design: _Design) -> np.ndarray:
        """Every curve at its design's y -> [L,H]."""
        return np.einsum("lk,klh->lh", self.coef, design.powers[: self.coef.shape[1]])

    def values_at(self, y: np.ndarray) -> np.ndarray:
        """Every curve at its own points y [L,M] -> [L,M]."""
        t = (y - self.centre[:, None]) / self.scale[:, None]
        out = np.repeat(self.coef[:, -1:], t.shape[1], axis=1)
        for k in range(self.coef.shape[1] - 2, -1, -1):
            out = out * t + self.coef[:, k : k + 1]
        return out

    def at_each(self, y: np.ndarray) -> np.ndarray:
        """Curve i at y[i], [L] -> [L]."""
        return self.values_at(y[:, None])[:, 0]

    def slope(self, y: np.ndarray) -> np.ndarray:
        """dx/dy of each curve at its own y [L] -> [L]."""
        t = (y - self.centre) / self.scale
        out = np.zeros_like(t)
        for k in range(self.coef.shape[1] - 1, 0, -1):
            out = out * t + k * self.coef[:, k]
        return out / self.scale

    def coefficients(self, i: int) -> np.ndarray:
        """Curve i's coefficients in y, highest power first (np.polyval's order)."""
        low, high = self.centre[i] - self.scale[i], self.centre[i] + self.scale[i]
        coef = np.polynomial.Polynomial(self.coef[i], domain=[low, high]).convert().coef
        return np.concatenate([np.zeros(self.coef.shape[1] - len(coef)), coef[::-1]])


def _least_squares(design: _Design, x: np.ndarray, weight: np.ndarray, used: np.ndarray) -> _Curves:
    """Weighted least-squares x(y) for L curves: x and weight [L,H] (weight 0: not a point), powers `used` -> curves.

    The normal equations in the design's t are well conditioned, and one batched solve costs a fraction
    of a lstsq per curve. Powers a curve does not use (_used_powers) get an identity row: coefficient 0.
    """
    size = used.shape[1]
    w2 = weight * weight
    moments = (design.powers[: 2 * size - 1] * w2).sum(axis=2).T  # [L, 2 size - 1]: sum w^2 t^k
    rhs = (design.powers[:size] * (w2 * x)).sum(axis=2).T * used  # [L, size]: sum w^2 x t^k
    k = np.arange(size)
    gram = moments[:, k[:, None] + k[None, :]] * used[:, :, None] * used[:, None, :]
    gram += np.eye(size) * (1.0 - used[:, None, :])
    return _Curves(np.linalg.solve(gram, rhs[..., None])[..., 0], design.centre, design.scale)


def _used_powers(degree: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Powers 0..max degree each of L curves fits, float 0/1 [L, max degree + 1]: up to its degree, and to
    what its number of points [L,H] (distinct y) determines."""
    k = np.arange(int(degree.max()) + 1)
    return (k[None, :] <= np.minimum(degree, points.sum(axis=1) - 1)[:, None]).astype(np.float64)


def _masked_median(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """np.median of each row's masked entries, [R,H] -> [R] (rows without any: inf)."""
    n = mask.sum(axis=1)
    ordered = np.sort(np.where(mask, values, np.inf), axis=1)
    rows = np.arange(len(values))
    return 0.5 * (ordered[rows, np.maximum(n - 1, 0) // 2] + ordered[rows, n // 2])
