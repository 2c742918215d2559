"""The road surface and background: sky, tree line, terrain, verges, asphalt, and marks on it that are not lanes."""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np

from .geometry import fill_ground_polygon, full_res_rows
from .scene import (
    BG_RES,
    IMG_H,
    IMG_W,
    LOW_RES,
    Color,
    LaneLine,
    Road,
    SceneParams,
    clip_color,
)


def texture_maps(rng: np.random.Generator, params: SceneParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smooth noise in ~[-0.5, 0.5] at background resolution: terrain, road (with tyre tracks), sky/paint wear."""
    low_w, low_h = IMG_W // LOW_RES, IMG_H // LOW_RES
    maps = []
    for channel in range(3):
        coarse = rng.random((low_h // 8, low_w // 8), dtype=np.float32)
        low = 0.7 * cv2.resize(coarse, (low_w, low_h), interpolation=cv2.INTER_CUBIC)
        low += 0.3 * rng.random((low_h, low_w), dtype=np.float32) - 0.5
        if channel == 1 and params.road.tyre_tracks > 0:
            low -= params.road.tyre_tracks / max(params.road.texture, 1e-3) * tyre_tracks(params, low.shape)
        maps.append(cv2.resize(low, (IMG_W // BG_RES, IMG_H // BG_RES), interpolation=cv2.INTER_LINEAR))
    return tuple(maps)


def tyre_tracks(params: SceneParams, shape: tuple[int, int]) -> np.ndarray:
    """Soft 0..1 map of the two wheel paths of every labelled lane, at 1/LOW_RES resolution."""
    tracks = np.zeros(shape, np.float32)
    for a, b in zip(params.lines, params.lines[1:]):
        centre = (a.offset + b.offset) / 2
        for dx in (-0.8, 0.8):
            fill_ground_polygon(tracks, params, centre + dx - 0.3, centre + dx + 0.3, 1.0, factor=LOW_RES, aa=False)
    return cv2.GaussianBlur(tracks, (0, 0), 1.0)


def haze_at_rows(params: SceneParams, rows: np.ndarray) -> np.ndarray:
    """Haze blend factor (1 = pure haze colour) of the ground seen at full-resolution image rows."""
    camera = params.camera
    dv = np.asarray(rows, np.float32) - camera.horizon
    z = camera.focal * camera.height / np.maximum(dv, 1e-3)
    return np.where(dv > 0, 1.0 - np.exp(-z / params.scenery.visibility), 1.0).astype(np.float32)


def render_background(params: SceneParams, tex: tuple[np.ndarray, ...]) -> np.ndarray:
    """Float32 BGR image at 1/BG_RES resolution: sky, tree line, terrain, verge and asphalt (no markings)."""
    sc, road, camera = params.scenery, params.road, params.camera
    bw, bh = IMG_W // BG_RES, IMG_H // BG_RES
    full_rows = full_res_rows(BG_RES, bh)
    first_ground = int(np.searchsorted(full_rows, camera.horizon, side="right"))
    image = np.empty((bh, bw, 3), np.float32)

    # sky: vertical gradient + clouds
    t = np.clip(full_rows[:first_ground] / max(camera.horizon, 1.0), 0, 1) ** 1.5
    sky_view = image[:first_ground]
    sky_view[:] = lerp_rows(sc.sky_top_bgr, sc.sky_horizon_bgr, t)[:, None, :]
    if sc.clouds > 0:
        cloud = np.clip(tex[2][:first_ground] * (2.2 * sc.clouds) + 0.2 * sc.clouds, 0, 1)
        sky_view += cv2.merge([cloud] * 3) * (np.float32(245) - sky_view)

    # tree / hill band right above the horizon
    if sc.tree_line_px >= 1 and first_ground > 0:
        draw_tree_line(image, params, tex, full_rows, first_ground)

    # ground: terrain, verge, road; all hazed by distance
    rows = slice(first_ground, bh)
    h = haze_at_rows(params, full_rows[rows])[:, None]
    horizon_col = np.asarray(sc.sky_horizon_bgr, np.float32)
    ground = image[rows]
    terrain = np.asarray(sc.terrain_bgr, np.float32) * (1 - h) + horizon_col * h
    rows_times(terrain, 1 + 0.35 * tex[0][rows], dst=ground)
    road_tex = tex[1][rows]
    extra = [(s.lat_left, s.lat_right, s.bgr, 2 * s.texture) for s in params.strips]
    for lat_l, lat_r, colour, amp in (
        *extra,
        (road.edge_left - road.verge_width, road.edge_right + road.verge_width, road.verge_bgr, 0.3),
        (road.edge_left, road.edge_right, road.asphalt_bgr, 2 * road.texture),
    ):
        mask = np.zeros((bh, bw), np.uint8)
        fill_ground_polygon(mask, params, lat_l, lat_r, 255, factor=BG_RES, aa=False)
        surface = np.asarray(colour, np.float32) * (1 - h) + horizon_col * h
        paste(ground, surface, 1 + amp * road_tex, mask[rows])
    return image


def lerp_rows(a: Color, b: Color, t: np.ndarray) -> np.ndarray:
    """Per-row colour interpolation a->b, shape [len(t), 3]."""
    a_, b_ = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return a_[None] + t[:, None].astype(np.float32) * (b_ - a_)[None]


def rows_times(colour_rows: np.ndarray, modulation: np.ndarray, dst: np.ndarray | None = None) -> np.ndarray:
    """[R, W, 3] image colour_rows[r, c] * modulation[r, w] (per-row colour times a brightness map)."""
    merged = cv2.merge([modulation * colour_rows[:, c : c + 1] for c in range(3)], dst=dst)
    if dst is not None and not np.shares_memory(merged, dst):  # OpenCV chose not to write in place
        dst[...] = merged
    return merged


def paste(dst: np.ndarray, colour_rows: np.ndarray, modulation: np.ndarray, mask: np.ndarray) -> None:
    """In place dst = colour_rows * modulation where the mask is set (only rows that hold mask pixels are computed)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return
    r = slice(rows[0], rows[-1] + 1)
    target = dst[r]
    pasted = cv2.copyTo(rows_times(colour_rows[r], modulation[r]), mask[r], target)
    if not np.shares_memory(pasted, target):  # OpenCV chose not to write in place
        target[...] = pasted


def draw_tree_line(
    image: np.ndarray, params: SceneParams, tex: tuple[np.ndarray, ...], full_rows: np.ndarray, first_ground: int
) -> None:
    """A jagged band of trees/hills whose base sits on the horizon (background resolution)."""
    sc = params.scenery
    bw = image.shape[1]
    rng = np.random.default_rng(params.texture_seed ^ 0x7EE5)
    knots = rng.random(bw // 12 + 2).astype(np.float32)
    profile = cv2.resize(knots[None, :], (bw, 1), interpolation=cv2.INTER_CUBIC)[0]
    profile = np.clip(profile * 0.8 + 0.25 * rng.random(bw, dtype=np.float32), 0, 1) * sc.tree_line_px
    top = max(first_ground - int(math.ceil(sc.tree_line_px / BG_RES)) - 1, 0)
    band = image[top:first_ground]
    inside = full_rows[top:first_ground, None] >= params.camera.horizon - profile[None, :]
    inside = inside.astype(np.float32)[..., None]
    colour = np.asarray(sc.tree_bgr, np.float32) * 0.75 + np.asarray(sc.sky_horizon_bgr, np.float32) * 0.25
    trees = colour * (1 + 0.5 * tex[0][top:first_ground, :, None])
    band += inside * (trees - band)


def sample_surface_marks(rng: np.random.Generator, params: SceneParams) -> tuple[LaneLine, ...]:
    """Lines on the road that are not lane markings: tar seams, slab joints, ghosts of old paint, the asphalt edge."""
    road, lines = params.road, params.lines
    asphalt = np.asarray(road.asphalt_bgr, float)
    marks = []
    for _ in range(int(rng.integers(1, 5))):
        kind = rng.random()
        if kind < 0.45:  # tar seam / crack sealant: dark, thin, anywhere across the road
            colour, width, opacity = asphalt * rng.uniform(0.25, 0.6), rng.uniform(0.03, 0.12), rng.uniform(0.5, 1.0)
            offset = rng.uniform(road.edge_left, road.edge_right)
        elif kind < 0.75:  # slab joint along a lane, often close to a line
            colour, width, opacity = asphalt * rng.uniform(0.45, 0.75), rng.uniform(0.02, 0.05), rng.uniform(0.6, 1.0)
            near = lines[int(rng.integers(len(lines)))].offset
            offset = near + rng.choice([-1, 1]) * rng.uniform(0.25, 1.2)
        else:  # ghost of removed paint or a bright concrete strip: lighter, low contrast
            colour, width, opacity = asphalt + rng.uniform(15, 45), rng.uniform(0.1, 0.4), rng.uniform(0.3, 0.7)
            offset = rng.uniform(road.edge_left, road.edge_right)
        dashed = bool(rng.random() < 0.2)
        marks.append(
            LaneLine(
                offset=float(offset), width=float(width), color_bgr=clip_color(colour), opacity=float(opacity),
                max_distance=rng.uniform(20, 150), dashed=dashed, dash_length=rng.uniform(1, 8),
                gap_length=rng.uniform(1, 8), dash_phase=rng.uniform(0, 10),
            )
        )
    return tuple(marks)


def sample_verge(rng: np.random.Generator, road: Road) -> Road:
    """A verge of dirt, grass, gravel or concrete instead of grey, often wider: a strong edge that is not a lane."""
    palettes = [(95, 135, 165), (120, 160, 185), (60, 120, 85), (80, 140, 110), (175, 178, 180), (150, 160, 170)]
    base = np.asarray(palettes[int(rng.integers(len(palettes)))], float) + rng.normal(0, 10, 3)
    return replace(road, verge_bgr=clip_color(base), verge_width=rng.uniform(0.3, 4.0))
