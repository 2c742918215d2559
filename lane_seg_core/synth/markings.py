"""Lane markings: their image polygons and alpha-blending the (worn, hazed, shadowed) paint."""

from __future__ import annotations

import math

import cv2
import numpy as np

from .geometry import SUBPIXEL_BITS, SUBPIXEL_ONE, fill, strip_polygon
from .labels import painted_intervals, visible_end
from .scene import BG_RES, IMG_H, IMG_W, LaneLine, SceneParams
from .surface import haze_at_rows


def marking_polygons(params: SceneParams, line: LaneLine) -> list[np.ndarray]:
    """Image polygons (float px) of every painted piece (dash) of one lane line."""
    camera = params.camera
    z_near = camera.depth_at_row(IMG_H + 2)
    z_far = min(visible_end(line, params.distance_travelled), params.road.length)
    half = line.width / 2
    centres = [line.offset] if line.double_gap <= 0 else [line.offset - line.double_gap / 2, line.offset + line.double_gap / 2]
    return [
        strip_polygon(params, centre - half, centre + half, z0, z1)
        for z0, z1 in painted_intervals(line, z_near, z_far, params.distance_travelled)
        for centre in centres
    ]


def paint_markings(
    image: np.ndarray, params: SceneParams, tex: tuple[np.ndarray, ...], shade: np.ndarray | None
) -> None:
    """Alpha-blend all lane markings (anti-aliased, hazed, worn, shadowed) into the full-size uint8 image."""
    top = min(max(int(math.floor(params.camera.horizon)), 0), IMG_H - 1)  # no paint above the horizon
    alpha = np.zeros((IMG_H - top, IMG_W), np.uint8)
    paint = np.zeros((IMG_H - top, IMG_W, 3), np.uint8)
    for line in params.lines + params.decoys:
        polys = [poly - np.array([0.0, top]) for poly in marking_polygons(params, line)]
        if not polys:
            continue
        fill(alpha, polys, 255.0 * line.opacity, aa=True)
        colour = tuple(float(c) for c in line.color_bgr)
        fill(paint, polys, colour, aa=False)
        pts = [np.round(np.clip(p, -1e5, 1e5) * SUBPIXEL_ONE).astype(np.int32) for p in polys]
        cv2.polylines(paint, pts, True, colour, 4, cv2.LINE_8, SUBPIXEL_BITS)  # covers the anti-aliased fringe
    found = cv2.findNonZero(alpha)
    if found is None:
        return
    xs, ys_local = found[:, 0, 0], found[:, 0, 1]
    ys = ys_local + top
    a = alpha[ys_local, xs].astype(np.float32) * np.float32(1 / 255)
    wear = params.road.marking_wear
    if wear > 0:
        a *= np.clip(1 - wear * (1.6 * tex[2][ys // BG_RES, xs // BG_RES] + 0.5), 0, 1)  # mean 1 - wear / 2
    h = haze_at_rows(params, np.arange(IMG_H))[ys, None]
    horizon_col = np.asarray(params.scenery.sky_horizon_bgr, np.float32)
    target = paint[ys_local, xs].astype(np.float32) * (1 - h) + horizon_col * h
    if shade is not None:
        target *= shade[ys // BG_RES, xs // BG_RES, None]
    pixels = image[ys, xs].astype(np.float32)
    image[ys, xs] = np.clip(pixels + a[:, None] * (target - pixels) + 0.5, 0, 255).astype(np.uint8)
