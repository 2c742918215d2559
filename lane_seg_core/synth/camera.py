"""Camera sampling: focal length, principal point, mounting height, pitch and yaw."""

from __future__ import annotations

import math

import numpy as np

from .scene import IMG_H, IMG_W, Camera


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
