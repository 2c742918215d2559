"""Everything beside the road: sky and terrain choice, guard rails."""

from __future__ import annotations

import math

import numpy as np

from .geometry import depth_samples, fill, haze_color
from .scene import IMG_H, SceneParams, Scenery, SynthConfig, clip_color


def sample_scenery(rng: np.random.Generator, config: SynthConfig) -> Scenery:
    """Sky (clear or overcast), terrain type, tree line, haze and guard rails."""
    if rng.random() < 0.6:  # clear blue
        top = (rng.uniform(190, 245), rng.uniform(140, 195), rng.uniform(80, 140))
        hor = (rng.uniform(215, 250), rng.uniform(200, 240), rng.uniform(180, 225))
    else:  # overcast / hazy
        g = rng.uniform(150, 225)
        top = (g + rng.uniform(-5, 10), g, g - rng.uniform(0, 10))
        g2 = min(g + rng.uniform(5, 30), 250)
        hor = (g2, g2, g2 - rng.uniform(0, 8))
    terrains = [(55, 110, 70), (85, 140, 150), (110, 160, 190), (70, 95, 95), (45, 85, 55)]
    base = terrains[int(rng.integers(len(terrains)))]
    terrain = tuple(float(np.clip(c + rng.normal(0, 12), 0, 255)) for c in base)
    tree = tuple(float(np.clip(c + rng.normal(0, 10), 0, 255)) for c in (40, 70, 45))
    return Scenery(
        sky_top_bgr=clip_color(top),
        sky_horizon_bgr=clip_color(hor),
        clouds=rng.uniform(0, 1) if rng.random() < 0.5 else 0.0,
        terrain_bgr=terrain,
        tree_bgr=tree,
        tree_line_px=rng.uniform(0, 55) if rng.random() < 0.8 else 0.0,
        visibility=rng.uniform(250, 1500),
        guardrail_left=bool(rng.random() < config.guardrail_prob),
        guardrail_right=bool(rng.random() < config.guardrail_prob),
    )




def draw_guardrails(image: np.ndarray, params: SceneParams) -> None:
    """Metal guard rails (rail band plus posts) just beyond the road verge."""
    sc, road, camera = params.scenery, params.road, params.camera
    sides = [
        (road.edge_left - road.verge_width - 0.3, sc.guardrail_left),
        (road.edge_right + road.verge_width + 0.3, sc.guardrail_right),
    ]
    z_near = camera.depth_at_row(IMG_H + 60)
    z_far = min(road.length, 250.0)
    metal = (175.0, 178.0, 180.0)
    for lat, present in sides:
        if not present:
            continue
        z = depth_samples(camera, z_near, z_far, row_step=3.0)
        x = params.ground_x(lat, z)
        u, v_top = camera.project(x, z, 0.8)
        _, v_mid = camera.project(x, z, 0.55)
        for i in range(len(z) - 1):
            quad = np.array([[u[i], v_top[i]], [u[i + 1], v_top[i + 1]], [u[i + 1], v_mid[i + 1]], [u[i], v_mid[i]]])
            fill(image, [quad], haze_color(params, metal, z[i]))
        for zp in np.arange(math.ceil(z_near / 4) * 4, min(z_far, 80.0), 4.0):
            xp = float(params.ground_x(lat, np.float64(zp)))
            (ua, ub), v0 = camera.project(np.array([xp - 0.08, xp + 0.08]), zp, 0.0)
            v1 = camera.row_at_depth(zp) - camera.focal * 0.55 / zp
            quad = np.array([[ua, v1], [ub, v1], [ub, v0], [ua, v0]])
            fill(image, [quad], haze_color(params, (90.0, 90.0, 95.0), zp))
