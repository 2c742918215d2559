"""Projection and polygon helpers shared by the renderers (road strips, ground polygons, haze)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from .scene import IMG_H, Camera, Color, SceneParams

SUBPIXEL_BITS = 4  # fractional bits of polygon vertices handed to OpenCV
SUBPIXEL_ONE = 1 << SUBPIXEL_BITS


def scaled(poly: np.ndarray, factor: int) -> np.ndarray:
    """Full-resolution pixel coordinates -> those of an image downscaled `factor` times (cv2.resize convention)."""
    return (poly + 0.5) / factor - 0.5


def full_res_rows(factor: int, count: int) -> np.ndarray:
    """Full-resolution row coordinate of each row of an image downscaled `factor` times."""
    return (np.arange(count, dtype=np.float32) + 0.5) * factor - 0.5


def fill_ground_polygon(
    mask: np.ndarray,
    params: SceneParams,
    lat_left: float,
    lat_right: float,
    value: float,
    factor: int = 1,
    aa: bool = True,
) -> None:
    """Fill the road-surface strip between two lateral offsets, from the image bottom to the road's end."""
    camera = params.camera
    z_near = camera.depth_at_row(IMG_H + 2)
    z_far = min(params.road.length, camera.depth_at_row(camera.horizon + 0.3))
    poly = strip_polygon(params, lat_left, lat_right, z_near, z_far)
    fill(mask, [scaled(poly, factor)], value, aa)


def depth_samples(camera: Camera, z0: float, z1: float, row_step: float = 4.0) -> np.ndarray:
    """Distances from z0 to z1 spaced evenly in image rows (about `row_step` px apart)."""
    rows = abs(camera.row_at_depth(z0) - camera.row_at_depth(z1))
    n = int(min(max(math.ceil(rows / row_step) + 1, 2), 400))
    return 1.0 / np.linspace(1.0 / z0, 1.0 / z1, n)


def strip_polygon(params: SceneParams, lat_left: float, lat_right: float, z0: float, z1: float) -> np.ndarray:
    """Image polygon [N, 2] (float px) of the ground strip lat_left..lat_right between distances z0 and z1."""
    z = depth_samples(params.camera, z0, z1)
    ul, v = params.camera.project(params.ground_x(lat_left, z), z)
    ur, _ = params.camera.project(params.ground_x(lat_right, z), z)
    return np.concatenate([np.stack([ul, v], 1), np.stack([ur, v], 1)[::-1]])


def fill(img: np.ndarray, polys: list[np.ndarray], value, aa: bool = True) -> None:
    """cv2.fillPoly with sub-pixel vertices (float px) and optional anti-aliasing."""
    pts = [np.round(np.clip(p, -1e5, 1e5) * SUBPIXEL_ONE).astype(np.int32) for p in polys if len(p) >= 3]
    if pts:
        colour = value if isinstance(value, tuple) else (value,) * 3
        cv2.fillPoly(img, pts, colour, cv2.LINE_AA if aa else cv2.LINE_8, SUBPIXEL_BITS)


def ground_polygon_image(params: SceneParams, lat: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Project a ground polygon given in road coordinates, densifying edges so curves stay curved."""
    lat_c = np.append(lat, lat[0])
    z_c = np.append(z, z[0])
    pts_lat, pts_z = [], []
    for i in range(len(lat)):
        t = np.linspace(0, 1, 6, endpoint=False)
        pts_lat.append(lat_c[i] + t * (lat_c[i + 1] - lat_c[i]))
        pts_z.append(z_c[i] + t * (z_c[i + 1] - z_c[i]))
    lat_all, z_all = np.concatenate(pts_lat), np.concatenate(pts_z)
    u, v = params.camera.project(params.ground_x(lat_all, z_all), z_all)
    return np.stack([u, v], 1)


def haze_color(params: SceneParams, colour: Color, z: float) -> tuple[float, float, float]:
    """Colour seen through the distance haze at distance z."""
    k = 1 - math.exp(-z / params.scenery.visibility)
    return tuple(float(c * (1 - k) + hc * k) for c, hc in zip(colour, params.scenery.sky_horizon_bgr))
