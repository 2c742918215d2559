"""Camera sampling: focal length, principal point, mounting height, pitch and yaw; the ego car's hood in view."""

from __future__ import annotations

import math

import numpy as np

from .scene import IMG_H, IMG_W, Camera, Hood, clip_color


def sample_camera(rng: np.random.Generator) -> Camera:
    """Focal 1000-1200 px, height 1.3-1.8 m, horizon between rows ~230 and ~300."""
    focal = rng.uniform(1000, 1200)
    cy = IMG_H / 2 + rng.normal(0, 6)
    horizon = rng.uniform(232, 298)
    return Camera(
        focal=focal,
        cx=IMG_W / 2 + rng.normal(0, 8),
        cy=cy,
        height=rng.uniform(1.3, 1.8),
        pitch=math.atan((cy - horizon) / focal),
        yaw=rng.normal(0, 0.008),
    )


def sample_wide_camera(rng: np.random.Generator) -> Camera:
    """A dashcam-like camera: focal 700-1400 px (about 50-85 deg wide), height 1.1-2.4 m, horizon rows ~200-400."""
    focal = float(np.exp(rng.uniform(np.log(700), np.log(1400))))
    cy = IMG_H / 2 + rng.normal(0, 10)
    horizon = rng.uniform(200, 400)
    return Camera(
        focal=focal,
        cx=IMG_W / 2 + rng.normal(0, 20),
        cy=cy,
        height=rng.uniform(1.1, 2.4),
        pitch=math.atan((cy - horizon) / focal),
        yaw=rng.normal(0, 0.015),
    )


def mounted_camera(rng: np.random.Generator, focal: float, height: float, horizon: float) -> Camera:
    """One camera as mounted on a vehicle: the given focal, height and horizon row, plus a little pitch and yaw play."""
    cy = IMG_H / 2
    horizon = horizon + rng.normal(0, 3)  # the body pitches a little on its springs
    return Camera(
        focal=focal, cx=IMG_W / 2, cy=cy, height=height, pitch=math.atan((cy - horizon) / focal),
        yaw=rng.normal(0, 0.005),
    )


def sample_hood(rng: np.random.Generator, camera: Camera) -> Hood | None:
    """The bonnet: 20-110 px at the bottom centre, curving down to the sides; None if it would reach the road's far part."""
    top = IMG_H - rng.uniform(20, 110)
    if top < camera.horizon + 150:
        return None
    grey = rng.uniform(15, 200)
    tint = rng.normal(0, 15, 3)
    return Hood(top=float(top), sag=float(rng.uniform(10, 80)), bgr=clip_color(grey + tint))


def draw_hood(image: np.ndarray, hood: Hood) -> None:
    """Paint the hood over the image bottom: body colour with a brighter reflection band near its edge."""
    u = np.arange(IMG_W, dtype=float)
    edge = hood.top_row(u, IMG_W)
    rows = np.arange(IMG_H, dtype=float)[:, None]
    below = rows >= edge[None, :]
    depth = np.clip((rows - edge[None, :]) / 40.0, 0, 1)
    shade = (1.25 - 0.35 * depth)[..., None] * np.asarray(hood.bgr, float)
    image[below] = np.clip(shade, 0, 255).astype(np.uint8)[below]
