"""Ground truth: which stretches of each line carry paint and the tuSimple lanes at H_SAMPLES."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ..tusimple import ABSENT, H_SAMPLES
from .roadside import barrier_mask
from .scene import IMG_W, LOW_RES, LaneLine, SceneParams


def drop_hidden_lines(params: SceneParams, min_points: int) -> SceneParams:
    """Remove lines that show fewer than `min_points` label rows (they would be unlabelled paint)."""
    keep = tuple(
        line for line, xs in zip(params.lines, lane_labels(params)) if sum(x != ABSENT for x in xs) >= min_points
    )
    return replace(params, lines=keep)


# Ground truth


def visible_end(line: LaneLine, distance_travelled: float = 0.0) -> float:
    """Distance where the line's paint (and label) ends; a dashed line ends at the end of its last dash."""
    end = line.max_distance
    if not line.dashed:
        return end
    period = line.dash_length + line.gap_length
    into_period = (end + distance_travelled + line.dash_phase) % period
    return end - max(0.0, into_period - line.dash_length)


def painted_intervals(
    line: LaneLine, z_near: float, z_far: float, distance_travelled: float = 0.0
) -> list[tuple[float, float]]:
    """The [z0, z1] distance intervals that carry paint within [z_near, z_far]."""
    if z_far <= z_near:
        return []
    if not line.dashed:
        return [(z_near, z_far)]
    period = line.dash_length + line.gap_length
    shift = distance_travelled + line.dash_phase
    out = []
    for k in range(math.floor((z_near + shift) / period), math.floor((z_far + shift) / period) + 1):
        z0, z1 = max(k * period - shift, z_near), min(k * period - shift + line.dash_length, z_far)
        if z1 > z0 + 1e-6:
            out.append((z0, z1))
    return out


def lane_labels(params: SceneParams) -> list[list[int]]:
    """tuSimple lanes: the rounded x of each line centre at every H_SAMPLES row, ABSENT where not visible."""
    camera = params.camera
    rows = np.asarray(H_SAMPLES, float)
    below = rows - camera.horizon > 1e-6
    z = np.where(below, camera.focal * camera.height / np.where(below, rows - camera.horizon, 1.0), np.inf)
    walls = barrier_mask(params)
    lanes = []
    for line in params.lines:
        end = min(visible_end(line, params.distance_travelled), params.road.length)
        seen = below & (z <= end)
        zs = np.where(seen, z, 1.0)
        u, _ = camera.project(params.ground_x(line.offset, zs), zs)
        x = np.round(u).astype(int)
        seen &= (x >= 0) & (x <= IMG_W - 1)
        if params.hood is not None:
            seen &= rows < params.hood.top_row(u, IMG_W)
        if walls is not None:  # a barrier on the inside of a bend hides the far part of the lanes
            cols = np.clip(u // LOW_RES, 0, walls.shape[1] - 1).astype(int)
            seen &= walls[np.clip(rows // LOW_RES, 0, walls.shape[0] - 1).astype(int), cols] == 0
        lanes.append([int(v) if ok else ABSENT for v, ok in zip(x, seen)])
    return lanes


# Rendering
