"""Real lane geometry: road layouts (lane offsets, heading, curvature, reach) fitted to tuSimple label lines.

A label line holds image x positions only. Read through a nominal tuSimple camera (horizon at the lanes' own
vanishing row, focal `NOMINAL_FOCAL`, height `NOMINAL_HEIGHT` chosen so the median lane is 3.7 m wide), each
lane's points become ground points (X, Z), and one road centreline ``X = offset_j + heading Z + curvature Z^2 / 2``
shared by all lanes is fitted to them. The synthetic world then draws its lanes where real lanes were.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

NOMINAL_FOCAL = 1050.0  # px
NOMINAL_HEIGHT = 1.6  # m
NOMINAL_CX = 640.0
MIN_ROWS_BELOW_HORIZON = 20.0  # label points closer to the vanishing row than this are too far to place
MAX_RESIDUAL = 0.35  # m, rms; worse fits (merging roads, labelling errors) are skipped


@dataclass(frozen=True)
class RealLayout:
    """One real frame's lanes on the ground: offsets (m, left to right), where each is last seen (m), road shape."""

    offsets: tuple[float, ...]
    ends: tuple[float, ...]
    heading: float
    curvature: float  # 1/m, positive bends right

    @property
    def lane_width(self) -> float:
        """Median spacing of neighbouring lines, m."""
        return float(np.median(np.diff(self.offsets)))


def vanishing_row(lanes: list[np.ndarray], rows: np.ndarray) -> float | None:
    """Median intersection row of straight lines fitted to the near part (rows >= 400) of each pair of lanes."""
    fits = []
    for x in lanes:
        near = (x >= 0) & (rows >= 400)
        if near.sum() >= 5:
            fits.append(np.polyfit(rows[near], x[near], 1))
    crossings = [
        (b2 - b1) / (a1 - a2)
        for i, (a1, b1) in enumerate(fits)
        for a2, b2 in fits[i + 1 :]
        if abs(a1 - a2) > 0.3
    ]
    return float(np.median(crossings)) if crossings else None


def fit_layout(record: dict) -> RealLayout | None:
    """The road layout of one tuSimple label line (dict with lanes, h_samples), or None when it does not fit."""
    rows = np.asarray(record["h_samples"], float)
    lanes = [np.asarray(lane, float) for lane in record["lanes"]]
    lanes = [x for x in lanes if (x >= 0).sum() >= 5]
    if len(lanes) < 2:
        return None
    horizon = vanishing_row(lanes, rows)
    if horizon is None or not 180 <= horizon <= 320:
        return None
    columns, xs, zs, which = [], [], [], []
    for j, x in enumerate(lanes):
        seen = (x >= 0) & (rows > horizon + MIN_ROWS_BELOW_HORIZON)
        dv = rows[seen] - horizon
        xs.append((x[seen] - NOMINAL_CX) * NOMINAL_HEIGHT / dv)
        zs.append(NOMINAL_FOCAL * NOMINAL_HEIGHT / dv)
        which.append(np.full(seen.sum(), j))
    x_all, z_all, lane_of = np.concatenate(xs), np.concatenate(zs), np.concatenate(which)
    for j in range(len(lanes)):
        columns.append((lane_of == j).astype(float))
    design = np.stack(columns + [z_all, 0.5 * z_all**2], 1)
    solution, *_ = np.linalg.lstsq(design, x_all, rcond=None)
    residual = float(np.sqrt(np.mean((design @ solution - x_all) ** 2)))
    offsets = solution[: len(lanes)]
    order = np.argsort(offsets)
    spacing = np.diff(offsets[order])
    if residual > MAX_RESIDUAL or spacing.min() < 2.4 or spacing.max() > 5.5:
        return None
    ends = [float(zs[j].max()) for j in order]
    return RealLayout(
        offsets=tuple(float(v) for v in offsets[order]),
        ends=tuple(ends),
        heading=float(solution[-2]),
        curvature=float(solution[-1]),
    )


@lru_cache(maxsize=4)
def load_layouts(path: str) -> tuple[RealLayout, ...]:
    """Layouts of every fitting label line in a tuSimple label file, or in all `*.json*` files of a folder."""
    source = Path(path)
    files = sorted(source.glob("*.json*")) if source.is_dir() else [source]
    if not files or not all(f.is_file() for f in files):
        raise FileNotFoundError(f"--layouts {path}: no tuSimple label lines found there")
    layouts = []
    for file in files:
        with open(file, encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    layout = fit_layout(json.loads(line))
                except (ValueError, KeyError, TypeError) as exc:
                    raise ValueError(f"{file}:{number}: not a tuSimple label line ({exc})") from None
                if layout is not None:
                    layouts.append(layout)
    if not layouts:
        raise ValueError(f"--layouts {path}: none of its label lines gives a road layout")
    return tuple(layouts)
