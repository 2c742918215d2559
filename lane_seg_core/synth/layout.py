"""Road layout: lane count and spacing, centreline heading and curvature, line styles, asphalt look."""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from .real_layouts import RealLayout
from .scene import LaneLine, Road, SynthConfig, luma


def sample_road(rng: np.random.Generator, config: SynthConfig) -> tuple[Road, tuple[LaneLine, ...]]:
    """Lane layout (2..5 lines around the ego lane), centreline shape and asphalt look."""
    weights = np.asarray(config.line_count_weights, float)
    n_lines = 2 + int(rng.choice(len(weights), p=weights / weights.sum()))
    lane_width = rng.uniform(3.2, 3.9)
    ego = int(rng.integers(0, n_lines - 1))  # ego lane lies between lines ego and ego+1
    ego_offset = rng.uniform(-0.28, 0.28) * lane_width  # camera right of the ego lane centre
    offsets = [(j - ego - 0.5) * lane_width - ego_offset for j in range(n_lines)]

    if rng.random() < config.curve_prob:
        curvature = rng.choice([-1, 1]) * rng.uniform(0.25, 1.0) * config.max_curvature
    else:
        curvature = rng.normal(0, 0.05) * config.max_curvature
    heading = rng.normal(0, 0.012)

    concrete = rng.random() < 0.12
    grey = rng.uniform(135, 165) if concrete else rng.uniform(55, 135)
    asphalt = tuple(float(np.clip(grey + rng.normal(0, 2.5), 0, 255)) for _ in range(3))
    verge_grey = grey * 0.8 + 30 + rng.normal(0, 10)
    verge = tuple(float(np.clip(verge_grey + rng.normal(0, 4), 0, 255)) for _ in range(3))
    length = rng.uniform(130, 260) if rng.random() < 0.3 else 1e4
    wear = rng.uniform(0, 0.6) if rng.random() < 0.4 else 0.0
    road = Road(
        heading=heading,
        curvature=float(curvature),
        lane_width=lane_width,
        edge_left=offsets[0] - rng.uniform(0.3, 3.0),
        edge_right=offsets[-1] + rng.uniform(0.3, 3.0),
        verge_width=rng.uniform(0.3, 1.5),
        length=length,
        asphalt_bgr=asphalt,
        verge_bgr=verge,
        texture=rng.uniform(0.02, 0.06 if concrete else 0.11),
        tyre_tracks=rng.uniform(0.0, 0.06) if rng.random() < 0.5 else 0.0,
        marking_wear=wear,
    )
    far = min(120.0, length - 5)
    lines = tuple(sample_line(rng, offset, j, n_lines, road, config, far) for j, offset in enumerate(offsets))
    return road, lines


def sample_line(
    rng: np.random.Generator, offset: float, index: int, n_lines: int, road: Road, config: SynthConfig, far: float
) -> LaneLine:
    """Style of one lane line: outer lines mostly solid, inner ones mostly dashed, paint contrast kept visible."""
    asphalt = road.asphalt_bgr
    outer = index in (0, n_lines - 1)
    dashed = rng.random() < (0.25 if outer else 0.85)
    yellow = (rng.uniform(30, 90), rng.uniform(170, 215), rng.uniform(205, 245))  # BGR
    road_luma = luma(asphalt)
    if index == 0 and rng.random() < 0.3 and luma(yellow) - road_luma >= config.min_marking_contrast:
        color = yellow
    else:
        grey = rng.uniform(min(max(205.0, road_luma + config.min_marking_contrast + 6), 249.0), 250.0)
        color = (grey + rng.uniform(-5, 5), grey + rng.uniform(-5, 5), grey + rng.uniform(-5, 5))
    color = tuple(float(min(c, 255.0)) for c in color)
    step = (luma(color) - road_luma) * mean_wear_factor(road)
    lowest = min(1.0, config.min_marking_contrast / max(step, 1e-3))
    return LaneLine(
        offset=offset,
        width=rng.uniform(0.10, 0.20),
        color_bgr=color,
        opacity=rng.uniform(max(0.55, lowest), 1.0) if lowest < 1.0 else 1.0,
        max_distance=rng.uniform(40.0, max(far, 41.0)),
        dashed=bool(dashed),
        dash_length=rng.uniform(2.5, 4.0),
        gap_length=rng.uniform(6.0, 9.0),
        dash_phase=rng.uniform(0, 13.0),
    )


def mean_wear_factor(road: Road) -> float:
    """Average fraction of paint coverage left by `road.marking_wear` (see paint_markings)."""
    return 1.0 - 0.5 * road.marking_wear


def restyle_lines(rng: np.random.Generator, lines: tuple[LaneLine, ...], config: SynthConfig) -> tuple[LaneLine, ...]:
    """Some lines become double lines (often yellow on the left) or rows of Botts' dots; the labels stay the same."""
    out = []
    for j, line in enumerate(lines):
        draw = rng.random()
        if draw < config.double_line_prob:
            yellow = j == 0 and rng.random() < 0.7
            colour = (rng.uniform(30, 90), rng.uniform(170, 215), rng.uniform(205, 245)) if yellow else line.color_bgr
            line = replace(
                line, double_gap=rng.uniform(0.2, 0.45), width=rng.uniform(0.1, 0.15), dashed=False,
                color_bgr=tuple(float(c) for c in colour),
            )
        elif draw < config.double_line_prob + config.botts_dots_prob:
            line = replace(
                line, dashed=True, dash_length=rng.uniform(0.1, 0.2), gap_length=rng.uniform(0.9, 1.6),
                width=rng.uniform(0.1, 0.15), opacity=1.0, max_distance=min(line.max_distance, 60.0),
            )
        out.append(line)
    return tuple(out)


def sample_real_road(
    rng: np.random.Generator, config: SynthConfig, layouts: Sequence[RealLayout]
) -> tuple[Road, tuple[LaneLine, ...]]:
    """A road whose lanes lie where the lanes of one real frame lay (mirrored half of the time); looks as sample_road."""
    road, _ = sample_road(rng, config)
    layout = layouts[int(rng.integers(len(layouts)))]
    sign = -1.0 if rng.random() < 0.5 else 1.0
    offsets = [sign * o for o in layout.offsets][:: int(sign)]
    ends = list(layout.ends)[:: int(sign)]
    curvature = float(np.clip(sign * layout.curvature, -1 / 180, 1 / 180))
    road = replace(
        road,
        heading=sign * layout.heading,
        curvature=curvature,
        lane_width=layout.lane_width,
        edge_left=offsets[0] - rng.uniform(0.3, 3.0),
        edge_right=offsets[-1] + rng.uniform(0.3, 3.0),
    )
    far = min(120.0, road.length - 5)
    lines = tuple(
        replace(
            sample_line(rng, offset, j, len(offsets), road, config, far),
            max_distance=float(np.clip(end * rng.uniform(0.9, 1.3), 30.0, max(far, 31.0))),
        )
        for j, (offset, end) in enumerate(zip(offsets, ends))
    )
    return road, lines
