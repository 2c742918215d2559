"""One frame: sampling a scene from a random generator and rendering it with its labels."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from .camera import sample_camera
from .labels import drop_hidden_lines, lane_labels
from .layout import sample_road
from .markings import paint_markings
from .photometry import apply_lighting, sample_visible_lighting
from .roadside import draw_guardrails, sample_scenery
from .scene import DEFAULT_CONFIG, IMG_H, IMG_W, SceneParams, SynthConfig
from .shadows import sample_shadows, shadow_factor
from .surface import render_background, texture_maps
from .vehicles import draw_vehicle, sample_vehicles


def frame_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of frame `index` in a dataset generated with `seed`."""
    return np.random.default_rng([seed, index])


def sample_scene(rng: np.random.Generator, config: SynthConfig = DEFAULT_CONFIG) -> SceneParams:
    """Draw a random, plausible highway scene with 2..5 labelled lane lines."""
    for _ in range(100):
        camera = sample_camera(rng)
        road, lines = sample_road(rng, config)
        params = SceneParams(
            camera=camera,
            road=road,
            lines=lines,
            scenery=sample_scenery(rng, config),
            lighting=sample_visible_lighting(rng, config, road, lines),
            texture_seed=int(rng.integers(2**63 - 1)),
        )
        params = drop_hidden_lines(params, config.min_label_points)
        if len(params.lines) < 2:
            continue
        vehicles = sample_vehicles(rng, params, config)
        shadows = sample_shadows(rng, params) if rng.random() < config.shadow_prob else ()
        return replace(params, vehicles=vehicles, shadows=shadows)
    raise RuntimeError("could not sample a scene with two visible lane lines")  # pragma: no cover


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
    for vehicle in params.vehicles:
        draw_vehicle(out, params, vehicle)
    noise_rng = rng if params.noise_seed is None else np.random.default_rng(params.noise_seed)
    out = apply_lighting(out, params.lighting, noise_rng)
    return out, lane_labels(params)
