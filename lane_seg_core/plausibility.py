"""Refusing what is not a lane: the lanes' common vanishing point, cuts where a lane passes it or turns back, and
a confidence per lane that combines the network's certainty, the lane's size and how well it aims at that point.

On a road seen from a car, the near (straight) parts of all lanes, extended, meet in one point, and no lane
rises above it; a lane's x may curve, but it does not head one way and come back, and it does not cross two
other lanes. A line on a barrier seen at the wrong angle, a cluster that mixes the pixels of distant marks, or
a fit that hooks into the sky breaks these rules. Each rule looks at the near part of a lane only, or has a
tolerance wide enough for the curves of real roads: in tuSimple's 13,752 labelled training lanes, 0.3% miss the
vanishing point of their frame by more than 0.1 image heights, and a cut where x turns back by 0.05 image heights
takes more than 15% of the rows of one lane.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

# Fitted on the real tuSimple val frames (../shared/data/real/tusimple-0601-val, built-in model): with this
# exponent the product of the three factors best predicts which lanes tuSimple's metric matches (log loss).
CALIBRATION_EXPONENT = 0.5


def vanishing_point(
    x0: np.ndarray, y0: np.ndarray, slope: np.ndarray, weight: np.ndarray, tolerance: float,
    region: tuple[float, float, float, float] = (-np.inf, np.inf, -np.inf, np.inf),
) -> tuple[np.ndarray | None, np.ndarray]:
    """The point most lines x = x0 + slope (y - y0) [L] pass within `tolerance` of: (x, y) or None; distances [L].

    Every pair of lines that meets above both anchors (y < y0: lanes converge upwards) inside `region` (x low,
    x high, y low, y high) proposes its crossing; the proposal with the most `weight` of lines near it (each
    counting 1 - (distance / tolerance)^2) wins and is refined by weighted least squares over the lines within
    `tolerance`. Distances are perpendicular, in the units of x and y; inf for lines of weight 0, and for all
    when fewer than two lines have a weight or no pair meets so (the point is then None).
    """
    distance = np.full(len(x0), np.inf)
    used = np.flatnonzero(weight > 0)
    if len(used) < 2:
        return None, distance
    s, w, low = slope[used], weight[used], y0[used]
    c = x0[used] - s * low  # each line: x - s y = c
    norm = np.sqrt(1.0 + s * s)
    i, j = _pairs(len(used))
    turn = s[j] - s[i]
    meets = np.abs(turn) > 1e-3 * norm[i] * norm[j]  # not (nearly) parallel
    y = (c[i] - c[j]) / np.where(meets, turn, 1.0)
    x = c[i] + s[i] * y
    meets &= (y < np.minimum(low[i], low[j])) & _inside(x, y, region)
    if not meets.any():
        return None, distance
    x, y = x[meets], y[meets]
    gap = np.abs(x[:, None] - s * y[:, None] - c) / norm  # [candidates, lines]
    best = np.argmax((np.maximum(1.0 - (gap / tolerance) ** 2, 0.0) * w).sum(axis=1))
    point, gap = np.array([x[best], y[best]]), gap[best]
    near = gap < tolerance
    if near.sum() >= 2:  # the 2x2 normal equations of the weighted perpendicular distances
        k, sn, cn = w[near] / norm[near] ** 2, s[near], c[near]
        a, b, d, e, f = k.sum(), -(k * sn).sum(), (k * sn * sn).sum(), (k * cn).sum(), -(k * sn * cn).sum()
        det = a * d - b * b
        if det > 1e-9 * a * d:
            refined = np.array([d * e - b * f, a * f - b * e]) / det
            if refined[1] < low[near].min() and _inside(refined[0], refined[1], region):
                point, gap = refined, np.abs(refined[0] - s * refined[1] - c) / norm
    distance[used] = gap
    return point, distance


@lru_cache(maxsize=64)
def _pairs(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i, j), i < j, of every pair of `count` items."""
    return np.triu_indices(count, 1)


def _inside(x: np.ndarray, y: np.ndarray, region: tuple[float, float, float, float]) -> np.ndarray:
    """Whether points (x, y) lie in region (x low, x high, y low, y high)."""
    return (x >= region[0]) & (x <= region[1]) & (y >= region[2]) & (y <= region[3])


def turn_back_cut(x: np.ndarray, y: np.ndarray, first: np.ndarray, last: np.ndarray, tolerance: float) -> np.ndarray:
    """The image row [L] above which each lane is cut because its x turns back; -inf where it does not.

    `x` [L,H] is each lane at the rows `y` [H] (ascending); lane l covers the rows first[l]..last[l] (indices).
    Followed from its lowest row up, x turns back when it comes back by more than `tolerance` from the farthest
    it went in one direction, and has also gone more than `tolerance` the other way: a lane that curves one
    way, or wobbles, is never cut. The cut is at the last row before the later of the two passes `tolerance`.
    """
    count, height = x.shape
    rows = np.arange(height)
    span = ((rows >= first[:, None]) & (rows <= last[:, None]))[:, ::-1]  # from the bottom up
    moved = (x - x[np.arange(count), last][:, None])[:, ::-1] * span
    back_left = np.maximum.accumulate(moved, axis=1) - moved > tolerance  # went right, then came back left
    back_right = moved - np.minimum.accumulate(moved, axis=1) > tolerance
    passed = np.zeros(count, dtype=np.int64)  # steps up from the bottom row; `height`: never
    for back in (back_left & span, back_right & span):
        passed = np.maximum(passed, np.where(back.any(axis=1), np.argmax(back, axis=1), height))
    return np.where(passed < height, y[np.minimum(height - passed, height - 1)], -np.inf)


def crossings(x: np.ndarray, span: np.ndarray, margin: float) -> np.ndarray:
    """How many other lanes each of L lanes crosses: x [L,H] at shared rows, span [L,H] the rows it covers.

    Two lanes cross when one is more than `margin` left of the other at some shared row and more than `margin`
    right of it at another.
    """
    both = span[:, None, :] & span[None, :, :]
    diff = np.where(both, x[:, None, :] - x[None, :, :], 0.0)
    return ((diff > margin).any(axis=2) & (diff < -margin).any(axis=2)).sum(axis=1)


def lane_confidence(
    mean_probability: np.ndarray, pixels: np.ndarray, distance: np.ndarray, lane_threshold: float,
    confidence_pixels: float, tolerance: float,
) -> np.ndarray:
    """A probability-like number in [0, 1] per lane that tuSimple's metric matches it ([L] each in, [L] out).

    The product of how far its pixels' mean probability lies between the lane threshold and 1, its size
    (1 - exp(-pixels / confidence_pixels)) and its aim at the vanishing point (a Gaussian of the distance with
    `tolerance` at 3 sigma; 1 where there is no point to check), raised to CALIBRATION_EXPONENT.
    """
    certainty = np.minimum(np.maximum((mean_probability - lane_threshold) / (1.0 - lane_threshold), 0.0), 1.0)
    size = 1.0 - np.exp(-pixels / confidence_pixels)
    aim = np.exp(-0.5 * (3.0 * np.where(np.isfinite(distance), distance, 0.0) / tolerance) ** 2)
    return (certainty * size * aim) ** CALIBRATION_EXPONENT
