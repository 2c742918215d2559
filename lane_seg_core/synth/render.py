"""One frame: sampling a scene from a random generator and rendering it with its labels."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from .camera import (
    draw_hood,
    mounted_camera,
    sample_camera,
    sample_hood,
    sample_wide_camera,
)
from .labels import drop_hidden_lines, lane_labels
from .layout import restyle_lines, sample_real_road, sample_road
from .markings import paint_markings
from .photometry import apply_lighting, apply_optics, sample_visible_lighting
from .real_layouts import load_layouts
from .roadside import (
    draw_barriers,
    draw_guardrails,
    draw_overpasses,
    sample_barriers,
    sample_far_carriageway,
    sample_overpasses,
    sample_scenery,
)
from .scene import DEFAULT_CONFIG, IMG_H, IMG_W, SceneParams, SynthConfig
from .shadows import barrier_shadow, overpass_shadow, sample_shadows, shadow_factor
from .surface import render_background, sample_surface_marks, sample_verge, texture_maps
from .vehicles import draw_vehicle, sample_vehicles


def frame_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of frame `index` in a dataset generated with `seed`."""
    return np.random.default_rng([seed, index])


def sample_scene(rng: np.random.Generator, config: SynthConfig = DEFAULT_CONFIG) -> SceneParams:
    """Draw a random, plausible highway scene with 2..5 labelled lane lines."""
    for _ in range(100):
        wide = config.wide_camera_prob > 0 and rng.random() < config.wide_camera_prob
        if config.fixed_camera is not None:
            camera = mounted_camera(rng, *config.fixed_camera)
        else:
            camera = sample_wide_camera(rng) if wide else sample_camera(rng)
        road, lines = sample_real_road(rng, config, load_layouts(config.layouts)) if config.layouts else sample_road(rng, config)
        if config.verge_variety:
            road = sample_verge(rng, road)
        if config.double_line_prob > 0 or config.botts_dots_prob > 0:
            lines = restyle_lines(rng, lines, config)
        params = SceneParams(
            camera=camera,
            road=road,
            lines=lines,
            scenery=sample_scenery(rng, config),
            lighting=sample_visible_lighting(rng, config, road, lines),
            texture_seed=int(rng.integers(2**63 - 1)),
        )
        params = add_highway_world(rng, params, config)
        params = drop_hidden_lines(params, config.min_label_points)
        if len(params.lines) < 2:
            continue
        vehicles = sample_vehicles(rng, params, config)
        shadows = sample_shadows(rng, params) if rng.random() < config.shadow_prob else ()
        return replace(params, vehicles=vehicles, shadows=shadows + params.shadows)
    raise RuntimeError("could not sample a scene with two visible lane lines")  # pragma: no cover


def add_highway_world(rng: np.random.Generator, params: SceneParams, config: SynthConfig) -> SceneParams:
    """Barriers (with the shadow at their foot), the far carriageway, marks that are not lanes, bridges, the hood."""
    barriers = sample_barriers(rng, params, config) if config.barrier_prob > 0 else ()
    strips, decoys = (), ()
    if config.far_carriageway_prob > 0 and rng.random() < config.far_carriageway_prob:
        if not any(b.side < 0 for b in barriers) or rng.random() < 0.3:
            strips, decoys = sample_far_carriageway(rng, params)
    if config.decoy_prob > 0 and rng.random() < config.decoy_prob:
        decoys += sample_surface_marks(rng, params)
    overpasses = sample_overpasses(rng, config) if config.overpass_prob > 0 else ()
    shadows = tuple(barrier_shadow(rng, b) for b in barriers if rng.random() < 0.6)
    shadows += tuple(overpass_shadow(rng, o) for o in overpasses)
    hood = sample_hood(rng, params.camera) if config.hood_prob > 0 and rng.random() < config.hood_prob else None
    return replace(
        params, barriers=barriers, strips=strips, decoys=decoys, overpasses=overpasses, shadows=shadows, hood=hood
    )


def sample_frame(seed: int, index: int, config: SynthConfig = DEFAULT_CONFIG) -> SceneParams:
    """The scene of frame `index` of a dataset generated with `seed` (independent of the frame count)."""
    return sample_scene(frame_rng(seed, index), config)


def render_scene(params: SceneParams) -> tuple[np.ndarray, list[list[int]]]:
    """Render the BGR uint8 [720, 1280, 3] image and its tuSimple lanes at H_SAMPLES."""
    rng = np.random.default_rng(params.texture_seed)
    tex = texture_maps(rng, params)
    shade = shadow_factor(params)
    background = render_background(params, tex)
    if shade is not None:
        background *= shade[:, :, None]
    out = cv2.resize(cv2.convertScaleAbs(background), (IMG_W, IMG_H), interpolation=cv2.INTER_LINEAR)
    paint_markings(out, params, tex, shade)
    draw_guardrails(out, params)
    draw_barriers(out, params)
    draw_overpasses(out, params)
    for vehicle in params.vehicles:
        draw_vehicle(out, params, vehicle)
    if params.hood is not None:
        draw_hood(out, params.hood)
    out = apply_optics(out, params.lighting)
    noise_rng = rng if params.noise_seed is None else np.random.default_rng(params.noise_seed)
    out = apply_lighting(out, params.lighting, noise_rng)
    return out, lane_labels(params)
