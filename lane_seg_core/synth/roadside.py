"""Everything beside the road: sky and terrain, guard rails, concrete barriers, the far carriageway, overpasses."""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np

from .geometry import depth_samples, fill, haze_color, scaled
from .scene import (
    IMG_H,
    IMG_W,
    LOW_RES,
    Barrier,
    Color,
    GroundStrip,
    LaneLine,
    Overpass,
    SceneParams,
    Scenery,
    SynthConfig,
    clip_color,
)


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


def sample_barriers(rng: np.random.Generator, params: SceneParams, config: SynthConfig) -> tuple[Barrier, ...]:
    """Concrete barriers / jersey walls beyond the verge on each side, each with probability barrier_prob."""
    road = params.road
    out = []
    for side, edge in ((-1, road.edge_left), (1, road.edge_right)):
        if rng.random() >= config.barrier_prob:
            continue
        grey = rng.uniform(120, 215)
        tint = rng.normal(0, 4, 3) + np.array([-3.0, 0.0, 4.0]) * rng.uniform(0, 2)  # concrete is slightly warm
        out.append(
            Barrier(
                lateral=edge + side * rng.uniform(0.1, 1.2) * (1 if rng.random() < 0.8 else 2.5),
                side=side,
                height=rng.uniform(0.8, 1.15),
                top_width=rng.uniform(0.15, 0.6),
                face_bgr=clip_color(grey + tint),
                jersey=bool(rng.random() < 0.6),
                stain=rng.uniform(0.0, 0.45),
            )
        )
    return tuple(out)


def sample_far_carriageway(
    rng: np.random.Generator, params: SceneParams
) -> tuple[tuple[GroundStrip, ...], tuple[LaneLine, ...]]:
    """The opposite carriageway beyond the left edge (2-4 lanes of asphalt) and its lines, which are not labelled."""
    road = params.road
    gap = rng.uniform(0.8, 12.0)  # median: barrier, grass or gravel
    lanes = int(rng.integers(2, 5))
    width = road.lane_width * rng.uniform(0.95, 1.05)
    right = road.edge_left - road.verge_width - gap
    left = right - lanes * width - rng.uniform(0.5, 2.5)
    grey = float(np.mean(road.asphalt_bgr)) + rng.normal(0, 12)
    strip = GroundStrip(left, right, clip_color((grey, grey, grey)), road.texture)
    lines = []
    for j in range(lanes + 1):
        offset = right - rng.uniform(0.3, 1.0) - j * width
        colour = (rng.uniform(30, 90), rng.uniform(170, 215), rng.uniform(205, 245)) if j == 0 else (230.0,) * 3
        lines.append(
            LaneLine(
                offset=offset, width=rng.uniform(0.1, 0.18), color_bgr=clip_color(colour),
                opacity=rng.uniform(0.5, 1.0), max_distance=rng.uniform(40, 150),
                dashed=bool(0 < j < lanes), dash_length=3.0, gap_length=9.0, dash_phase=rng.uniform(0, 12),
            )
        )
    return (strip,), tuple(lines)


def sample_overpasses(rng: np.random.Generator, config: SynthConfig) -> tuple[Overpass, ...]:
    """0 or 1 bridge deck across the road (its shadow comes from `shadows.sample_shadows`)."""
    if rng.random() >= config.overpass_prob:
        return ()
    grey = rng.uniform(90, 190)
    return (Overpass(rng.uniform(25, 160), rng.uniform(5.0, 6.5), rng.uniform(1.0, 2.5), clip_color((grey,) * 3)),)


def barrier_quads(params: SceneParams) -> Iterator[tuple[np.ndarray, Color]]:
    """Image quads [4, 2] (float px) and hazed colours of every barrier's road-facing side, top and stain, far to near."""
    camera, road = params.camera, params.road
    z_near = camera.depth_at_row(IMG_H + 80)
    z = depth_samples(camera, z_near, min(road.length, 400.0), row_step=3.0)[::-1]
    for barrier in params.barriers:
        lat, s, h = barrier.lateral, barrier.side, barrier.height  # s points from the face into the barrier
        face = np.asarray(barrier.face_bgr, float)
        if barrier.jersey:
            profile, shades = [(lat, 0.0), (lat + s * 0.15, 0.3), (lat + s * 0.2, h)], [1.05, 0.85]
        else:
            profile, shades = [(lat, 0.0), (lat, h)], [0.88]
        profile.append((profile[-1][0] + s * barrier.top_width, h))
        shades.append(1.2)
        bands = [(a, b, face * k) for (a, b), k in zip(zip(profile, profile[1:]), shades)]
        if barrier.stain > 0:
            bands.append(((lat, 0.0), (lat + s * 0.06, 0.12 if barrier.jersey else 0.2), face * shades[0] * (1 - barrier.stain)))
        for (la, ya), (lb, yb), colour in bands:
            ua, va = camera.project(params.ground_x(la, z), z, ya)
            ub, vb = camera.project(params.ground_x(lb, z), z, yb)
            for i in range(len(z) - 1):
                quad = np.array([[ua[i], va[i]], [ua[i + 1], va[i + 1]], [ub[i + 1], vb[i + 1]], [ub[i], vb[i]]])
                yield quad, haze_color(params, clip_color(colour), z[i])


def draw_barriers(image: np.ndarray, params: SceneParams) -> None:
    """Paint every barrier (a vertical wall or a jersey profile, its bright top and stained foot)."""
    for quad, colour in barrier_quads(params):
        fill(image, [quad], colour)


def barrier_mask(params: SceneParams) -> np.ndarray | None:
    """uint8 [IMG_H / LOW_RES, IMG_W / LOW_RES] mask of the pixels the barriers cover, or None without barriers."""
    if not params.barriers:
        return None
    mask = np.zeros((IMG_H // LOW_RES, IMG_W // LOW_RES), np.uint8)
    for quad, _ in barrier_quads(params):
        fill(mask, [scaled(quad, LOW_RES)], 255, aa=False)
    return mask


def draw_overpasses(image: np.ndarray, params: SceneParams) -> None:
    """Each bridge deck as a band across the whole image between its projected bottom and top edges."""
    camera = params.camera
    for bridge in params.overpasses:
        z = bridge.distance - params.distance_travelled
        if z <= 2.0 or z > params.road.length:
            continue
        bottom = camera.row_at_depth(z) - camera.focal * bridge.bottom / z
        top = bottom - camera.focal * bridge.thickness / z
        colour = haze_color(params, bridge.bgr, z)
        fill(image, [np.array([[-10, top], [IMG_W + 10, top], [IMG_W + 10, bottom], [-10, bottom]], float)], colour)
        ground = camera.row_at_depth(z)
        for x in (params.road.edge_left - 2.0, params.road.edge_right + 2.0):  # piers beside the road
            u = camera.cx + camera.focal * float(params.ground_x(x, np.float64(z))) / z
            half = camera.focal * 0.5 / z
            pier = np.array([[u - half, bottom], [u + half, bottom], [u + half, ground], [u - half, ground]], float)
            fill(image, [pier], clip_color(c * 0.8 for c in colour))
