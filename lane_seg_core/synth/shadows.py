"""Cast shadows on the road (trees, bridges, poles, vehicles) as a soft multiplicative shading map."""

from __future__ import annotations

import math

import cv2
import numpy as np

from .geometry import fill, ground_polygon_image, scaled
from .scene import BG_RES, IMG_H, IMG_W, LOW_RES, Barrier, Overpass, SceneParams, Shadow


def sample_shadows(rng: np.random.Generator, params: SceneParams) -> tuple[Shadow, ...]:
    """Tree-blob shadows, sometimes a bridge band or pole stripes, across the road."""
    road = params.road
    shadows: list[Shadow] = []
    strength = rng.uniform(0.3, 0.65)
    kind = rng.random()
    if kind < 0.25:  # overpass / bridge band across everything
        s0 = rng.uniform(6, 45)
        depth = rng.uniform(4, 14)
        band = ((-60.0, s0), (60.0, s0), (60.0, s0 + depth), (-60.0, s0 + depth))
        shadows.append(Shadow(band, strength, rng.uniform(2, 6)))
    if kind >= 0.15:  # trees along one or both sides, reaching into the road
        for _ in range(int(rng.integers(2, 9))):
            side = road.edge_left if rng.random() < 0.5 else road.edge_right
            centre = side + rng.normal(0, 2.5)
            s = rng.uniform(3, 70)
            rx, rs = rng.uniform(1.0, 4.5), rng.uniform(1.5, 7.0)
            angles = np.sort(rng.uniform(0, 2 * np.pi, 11))
            radii = rng.uniform(0.6, 1.0, 11)
            poly = tuple((centre + rx * r * math.cos(a), s + rs * r * math.sin(a)) for a, r in zip(angles, radii))
            shadows.append(Shadow(poly, strength * rng.uniform(0.8, 1.0), rng.uniform(3, 12)))
    if rng.random() < 0.2:  # long pole shadows
        for _ in range(int(rng.integers(1, 4))):
            s = rng.uniform(5, 50)
            slant = rng.uniform(-1.5, 1.5)
            x0 = road.edge_left - 1 if rng.random() < 0.5 else road.edge_right + 1
            x1 = x0 + np.sign(-x0) * rng.uniform(5, 14)
            w = rng.uniform(0.15, 0.35)
            poly = ((x0, s), (x1, s + slant), (x1, s + slant + w), (x0, s + w))
            shadows.append(Shadow(poly, strength, rng.uniform(1, 3)))
    return tuple(shadows)


def shadow_factor(params: SceneParams) -> np.ndarray | None:
    """Soft multiplicative shading (1 = lit) at background resolution from cast shadows, or None."""
    if not params.shadows and not params.vehicles:
        return None
    camera = params.camera
    low = np.zeros((IMG_H // LOW_RES, IMG_W // LOW_RES), np.float32)
    z_min = camera.depth_at_row(IMG_H + 40)
    by_softness: dict[float, list[tuple[np.ndarray, float]]] = {}
    for shadow in params.shadows:
        lat = np.array([p[0] for p in shadow.polygon], float)
        z = np.array([p[1] for p in shadow.polygon], float) - params.distance_travelled
        if z.max() <= z_min:
            continue
        poly = ground_polygon_image(params, lat, np.maximum(z, z_min))
        by_softness.setdefault(round(shadow.softness, 1), []).append((poly, shadow.strength))
    for v in params.vehicles:  # dark contact shadow under each vehicle
        lat = np.array([-1, 1, 1, -1]) * (v.width / 2 + 0.15) + v.lateral
        z = np.array([v.distance - 0.4, v.distance - 0.4, v.distance + v.length, v.distance + v.length])
        if z.max() > z_min:
            by_softness.setdefault(1.0, []).append((ground_polygon_image(params, lat, np.maximum(z, z_min)), 0.7))
    for softness, items in by_softness.items():
        layer = np.zeros_like(low)
        for poly, strength in items:
            fill(layer, [scaled(poly, LOW_RES)], strength, aa=False)
        layer = cv2.GaussianBlur(layer, (0, 0), max(softness / LOW_RES, 0.5))
        np.maximum(low, layer, out=low)
    if not low.any():
        return None
    return 1 - cv2.resize(low, (IMG_W // BG_RES, IMG_H // BG_RES), interpolation=cv2.INTER_LINEAR)


def barrier_shadow(rng: np.random.Generator, barrier: Barrier) -> Shadow:
    """The shadow a barrier casts onto the road beside its foot: a long strip 0.1-1.2 m wide."""
    width = rng.uniform(0.1, 1.2)
    inner = barrier.lateral + barrier.side * 0.02
    outer = inner - barrier.side * width
    return Shadow(((inner, -10.0), (outer, -10.0), (outer, 400.0), (inner, 400.0)), rng.uniform(0.25, 0.6), rng.uniform(1, 4))


def overpass_shadow(rng: np.random.Generator, bridge: Overpass) -> Shadow:
    """The band of shade under and beside a bridge deck."""
    s0 = bridge.distance - rng.uniform(0, 15)
    depth = rng.uniform(8, 20)
    band = ((-80.0, s0), (80.0, s0), (80.0, s0 + depth), (-80.0, s0 + depth))
    return Shadow(band, rng.uniform(0.35, 0.7), rng.uniform(2, 6))
