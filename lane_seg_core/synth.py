"""Synthetic road scenes written in tuSimple's exact dataset format (clips/*/20.jpg + label_data_*.json).

World model: a pinhole camera at height `h` above a flat road looks forward (+Z). Everything on the road is
placed in road coordinates (lateral offset from the camera at Z=0, distance along the road) and bent by the
road centreline ``c(Z) = (heading - yaw) * Z + curvature * Z**2 / 2``; a ground point (X, Z) projects to
``u = cx + f * X / Z`` and ``v = horizon + f * h / Z``. Lane markings are filled polygons between their
projected left/right edges, so their pixel width shrinks with distance and the ground truth (the projected
centre at each tuSimple row) is exactly the centre of what is painted. Rendering is a pure function of
`SceneParams`; frame *i* of a dataset is sampled from ``default_rng([seed, i])``.
"""

from __future__ import annotations

import math
import multiprocessing
import numbers
import os
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from statistics import NormalDist
from typing import Iterable, Iterator

import cv2
import numpy as np

from .tusimple import ABSENT, H_SAMPLES, LaneRecord

IMAGE_SIZE = (1280, 720)  # (width, height), tuSimple's frame size
JPEG_QUALITY = 90
FRAMES_PER_CLIP = 100  # frames grouped under one clips/<seq_id>/ directory

_W, _H = IMAGE_SIZE
_SHIFT = 4  # fractional bits of polygon vertices handed to OpenCV
_ONE = 1 << _SHIFT
_LOW = 4  # texture / shadow maps are drawn at 1/_LOW resolution
_BG = 2  # the background (sky, terrain, asphalt) is rendered at 1/_BG resolution
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
Color = tuple[float, float, float]  # BGR, 0..255


# --------------------------------------------------------------------------------------------------
# Scene description
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Camera:
    """Pinhole camera above a flat ground plane; pitch moves the horizon, yaw skews the road."""

    focal: float  # px
    cx: float  # principal point, px
    cy: float
    height: float  # m above the road
    pitch: float  # rad, positive looks down (horizon above cy)
    yaw: float  # rad, positive looks right of the driving direction

    @property
    def horizon(self) -> float:
        """Image row of the horizon (vanishing line of the ground plane)."""
        return self.cy - self.focal * math.tan(self.pitch)

    def project(self, x: np.ndarray, z: np.ndarray, y: float | np.ndarray = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Pixel (u, v) of camera-frame points: x right, z forward, y up from the road surface (m)."""
        return self.cx + self.focal * x / z, self.horizon + self.focal * (self.height - y) / z

    def depth_at_row(self, v: float | np.ndarray) -> float | np.ndarray:
        """Forward distance of the ground point seen at image row v (only valid below the horizon)."""
        return self.focal * self.height / (v - self.horizon)

    def row_at_depth(self, z: float | np.ndarray) -> float | np.ndarray:
        """Image row of the ground at forward distance z."""
        return self.horizon + self.focal * self.height / z


@dataclass(frozen=True)
class Road:
    """Road geometry and surface; lateral positions are metres right of the camera at Z=0."""

    heading: float  # dX/dZ of the lanes relative to the vehicle axis
    curvature: float  # 1/m, positive bends right
    lane_width: float
    edge_left: float  # lateral position of the asphalt edges
    edge_right: float
    verge_width: float  # gravel strip beyond each edge
    length: float  # visible road length (a crest hides the rest), m
    asphalt_bgr: Color
    verge_bgr: Color
    texture: float  # relative amplitude of asphalt blotches
    tyre_tracks: float  # darkening of the wheel paths, 0 = none
    marking_wear: float  # 0 = fresh paint, 1 = heavily worn (patchy)


@dataclass(frozen=True)
class LaneLine:
    """One painted lane boundary; it is labelled from the image bottom up to `visible_end`."""

    offset: float  # lateral position of the line centre, m
    width: float  # m
    color_bgr: Color
    opacity: float  # paint coverage 0..1 (contrast knob)
    max_distance: float  # where the paint ends, m
    dashed: bool
    dash_length: float = 3.0  # m
    gap_length: float = 9.0  # m
    dash_phase: float = 0.0  # m along the road


@dataclass(frozen=True)
class Vehicle:
    """A box-shaped vehicle standing on the road, seen from behind."""

    lateral: float  # centre, m (road coordinates)
    distance: float  # rear face distance from the camera, m
    width: float
    height: float
    length: float
    body_bgr: Color
    truck: bool = False


@dataclass(frozen=True)
class Shadow:
    """A soft-edged shadow polygon on the road, vertices as (lateral m, along-road s m)."""

    polygon: tuple[tuple[float, float], ...]
    strength: float  # 0..1 darkening at the core
    softness: float  # edge blur sigma, px


@dataclass(frozen=True)
class Scenery:
    """Everything that is not road: sky, tree line, terrain, haze, guard rails."""

    sky_top_bgr: Color
    sky_horizon_bgr: Color
    clouds: float  # 0..1
    terrain_bgr: Color
    tree_bgr: Color
    tree_line_px: float  # max height of the tree/hill band above the horizon
    visibility: float  # m, distance haze e-folding length
    guardrail_left: bool
    guardrail_right: bool


@dataclass(frozen=True)
class Lighting:
    """Global photometric settings applied to the whole frame."""

    brightness: float  # added on a 0..1 scale
    contrast: float
    gamma: float
    gain_bgr: Color  # per-channel colour cast
    noise_sigma: float  # sensor noise, 0..255 scale
    blur_sigma: float  # 0 = sharp


@dataclass(frozen=True)
class SceneParams:
    """Complete description of one frame; `render_scene` is a pure function of it.

    `distance_travelled` shifts everything fixed to the road (dashes, shadows) towards the camera, so a
    continuous drive can be animated by advancing it (and the vehicles' distances) between frames; there
    `noise_seed` varies the sensor noise per frame while `texture_seed` keeps the textures in place.
    """

    camera: Camera
    road: Road
    lines: tuple[LaneLine, ...]  # ordered left to right
    scenery: Scenery
    lighting: Lighting
    vehicles: tuple[Vehicle, ...] = ()
    shadows: tuple[Shadow, ...] = ()
    texture_seed: int = 0  # seeds the procedural textures (and the sensor noise unless noise_seed is set)
    distance_travelled: float = 0.0
    noise_seed: int | None = None  # seeds the sensor noise alone, so a video's noise can change per frame

    def ground_x(self, lateral: float | np.ndarray, z: np.ndarray) -> np.ndarray:
        """Camera-frame X of the road point at `lateral` metres, distance z."""
        slope = self.road.heading - self.camera.yaw
        return lateral + slope * z + 0.5 * self.road.curvature * z * z


@dataclass(frozen=True)
class SynthConfig:
    """Sampling knobs (difficulty/variety) for `sample_scene`; defaults target tuSimple-like highways."""

    line_count_weights: tuple[float, ...] = (0.15, 0.30, 0.40, 0.15)  # for 2, 3, 4, 5 lines
    curve_prob: float = 0.6  # share of frames with a clearly visible curve
    max_curvature: float = 1 / 300  # 1/m
    min_marking_contrast: float = 40.0  # luminance step paint vs asphalt (0..255) before lighting
    min_lit_contrast: float = 30.0  # the same step after the global lighting curve
    min_label_points: int = 5  # lines with fewer visible label rows are not painted
    shadow_prob: float = 0.3
    vehicle_prob: float = 0.3
    max_vehicles: int = 3
    guardrail_prob: float = 0.35
    blur_prob: float = 0.2
    max_noise_sigma: float = 6.0


DEFAULT_CONFIG = SynthConfig()


# --------------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------------


def frame_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of frame `index` in a dataset generated with `seed`."""
    return np.random.default_rng([seed, index])


def sample_scene(rng: np.random.Generator, config: SynthConfig = DEFAULT_CONFIG) -> SceneParams:
    """Draw a random, plausible highway scene with 2..5 labelled lane lines."""
    for _ in range(100):
        camera = _sample_camera(rng)
        road, lines = _sample_road(rng, config)
        params = SceneParams(
            camera=camera,
            road=road,
            lines=lines,
            scenery=_sample_scenery(rng, config),
            lighting=_sample_visible_lighting(rng, config, road, lines),
            texture_seed=int(rng.integers(2**63 - 1)),
        )
        params = _drop_hidden_lines(params, config.min_label_points)
        if len(params.lines) < 2:
            continue
        vehicles = _sample_vehicles(rng, params, config)
        shadows = _sample_shadows(rng, params) if rng.random() < config.shadow_prob else ()
        return replace(params, vehicles=vehicles, shadows=shadows)
    raise RuntimeError("could not sample a scene with two visible lane lines")  # pragma: no cover


def _sample_camera(rng: np.random.Generator) -> Camera:
    """Focal 1000-1200 px, height 1.3-1.8 m, horizon between rows ~230 and ~300."""
    focal = rng.uniform(1000, 1200)
    cy = _H / 2 + rng.normal(0, 6)
    horizon = rng.uniform(232, 298)
    return Camera(
        focal=focal,
        cx=_W / 2 + rng.normal(0, 8),
        cy=cy,
        height=rng.uniform(1.3, 1.8),
        pitch=math.atan((cy - horizon) / focal),
        yaw=rng.normal(0, 0.008),
    )


def _sample_road(rng: np.random.Generator, config: SynthConfig) -> tuple[Road, tuple[LaneLine, ...]]:
    """Lane layout (2..5 lines around the ego lane), centreline shape and asphalt look."""
    weights = np.asarray(config.line_count_weights, float)
    n_lines = 2 + int(rng.choice(len(weights), p=weights / weights.sum()))
    lane_width = rng.uniform(3.2, 3.9)
    ego = int(rng.integers(0, n_lines - 1))  # ego lane lies between lines ego and ego+1
    ego_offset = rng.uniform(-0.28, 0.28) * lane_width  # camera right of the ego lane centre
    offsets = [(j - ego - 0.5) * lane_width - ego_offset for j in range(n_lines)]

    if rng.random() < config.curve_prob:
        curvature = rng.choice([-1, 1]) * rng.uniform(0.25, 1.0) * config.max_curvature
    else:
        curvature = rng.normal(0, 0.05) * config.max_curvature
    heading = rng.normal(0, 0.012)

    concrete = rng.random() < 0.12
    grey = rng.uniform(135, 165) if concrete else rng.uniform(55, 135)
    asphalt = tuple(float(np.clip(grey + rng.normal(0, 2.5), 0, 255)) for _ in range(3))
    verge_grey = grey * 0.8 + 30 + rng.normal(0, 10)
    verge = tuple(float(np.clip(verge_grey + rng.normal(0, 4), 0, 255)) for _ in range(3))
    length = rng.uniform(130, 260) if rng.random() < 0.3 else 1e4
    wear = rng.uniform(0, 0.6) if rng.random() < 0.4 else 0.0
    road = Road(
        heading=heading,
        curvature=float(curvature),
        lane_width=lane_width,
        edge_left=offsets[0] - rng.uniform(0.3, 3.0),
        edge_right=offsets[-1] + rng.uniform(0.3, 3.0),
        verge_width=rng.uniform(0.3, 1.5),
        length=length,
        asphalt_bgr=asphalt,
        verge_bgr=verge,
        texture=rng.uniform(0.02, 0.06 if concrete else 0.11),
        tyre_tracks=rng.uniform(0.0, 0.06) if rng.random() < 0.5 else 0.0,
        marking_wear=wear,
    )
    far = min(120.0, length - 5)
    lines = tuple(_sample_line(rng, offset, j, n_lines, road, config, far) for j, offset in enumerate(offsets))
    return road, lines


def _sample_line(
    rng: np.random.Generator, offset: float, index: int, n_lines: int, road: Road, config: SynthConfig, far: float
) -> LaneLine:
    """Style of one lane line: outer lines mostly solid, inner ones mostly dashed, paint contrast kept visible."""
    asphalt = road.asphalt_bgr
    outer = index in (0, n_lines - 1)
    dashed = rng.random() < (0.25 if outer else 0.85)
    yellow = (rng.uniform(30, 90), rng.uniform(170, 215), rng.uniform(205, 245))  # BGR
    road_luma = _luma(asphalt)
    if index == 0 and rng.random() < 0.3 and _luma(yellow) - road_luma >= config.min_marking_contrast:
        color = yellow
    else:
        grey = rng.uniform(min(max(205.0, road_luma + config.min_marking_contrast + 6), 249.0), 250.0)
        color = (grey + rng.uniform(-5, 5), grey + rng.uniform(-5, 5), grey + rng.uniform(-5, 5))
    color = tuple(float(min(c, 255.0)) for c in color)
    step = (_luma(color) - road_luma) * _mean_wear_factor(road)
    lowest = min(1.0, config.min_marking_contrast / max(step, 1e-3))
    return LaneLine(
        offset=offset,
        width=rng.uniform(0.10, 0.20),
        color_bgr=color,
        opacity=rng.uniform(max(0.55, lowest), 1.0) if lowest < 1.0 else 1.0,
        max_distance=rng.uniform(40.0, max(far, 41.0)),
        dashed=bool(dashed),
        dash_length=rng.uniform(2.5, 4.0),
        gap_length=rng.uniform(6.0, 9.0),
        dash_phase=rng.uniform(0, 13.0),
    )


def _mean_wear_factor(road: Road) -> float:
    """Average fraction of paint coverage left by `road.marking_wear` (see _paint_markings)."""
    return 1.0 - 0.5 * road.marking_wear


def _luma(bgr: Color) -> float:
    """Rec.601 luminance of a BGR colour."""
    return 0.114 * bgr[0] + 0.587 * bgr[1] + 0.299 * bgr[2]


def _sample_scenery(rng: np.random.Generator, config: SynthConfig) -> Scenery:
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
        sky_top_bgr=_clip_color(top),
        sky_horizon_bgr=_clip_color(hor),
        clouds=rng.uniform(0, 1) if rng.random() < 0.5 else 0.0,
        terrain_bgr=terrain,
        tree_bgr=tree,
        tree_line_px=rng.uniform(0, 55) if rng.random() < 0.8 else 0.0,
        visibility=rng.uniform(250, 1500),
        guardrail_left=bool(rng.random() < config.guardrail_prob),
        guardrail_right=bool(rng.random() < config.guardrail_prob),
    )


def _clip_color(c: Iterable[float]) -> Color:
    """Clamp a colour to 0..255 floats."""
    return tuple(float(np.clip(x, 0, 255)) for x in c)


def _sample_lighting(rng: np.random.Generator, config: SynthConfig) -> Lighting:
    """Global brightness/contrast/gamma/colour cast, sensor noise and occasional blur."""
    return Lighting(
        brightness=rng.uniform(-0.15, 0.12),
        contrast=rng.uniform(0.7, 1.2),
        gamma=float(np.exp(rng.uniform(np.log(0.7), np.log(1.45)))),
        gain_bgr=(rng.uniform(0.93, 1.07), rng.uniform(0.95, 1.05), rng.uniform(0.93, 1.07)),
        noise_sigma=rng.uniform(1.0, config.max_noise_sigma),
        blur_sigma=rng.uniform(0.5, 1.3) if rng.random() < config.blur_prob else 0.0,
    )


def _sample_visible_lighting(
    rng: np.random.Generator, config: SynthConfig, road: Road, lines: tuple[LaneLine, ...]
) -> Lighting:
    """Random lighting under which every line keeps `config.min_lit_contrast` against the asphalt."""
    for _ in range(20):
        lighting = _sample_lighting(rng, config)
        if min(_lit_contrast(lighting, road, line) for line in lines) >= config.min_lit_contrast:
            return lighting
    return replace(lighting, brightness=0.0, contrast=1.0, gamma=1.0)


def _lit_contrast(lighting: Lighting, road: Road, line: LaneLine) -> float:
    """Luminance step between a line's (worn) paint and bare asphalt after the lighting curve."""
    asphalt = np.asarray(road.asphalt_bgr, float)
    coverage = line.opacity * _mean_wear_factor(road)
    painted = asphalt + coverage * (np.asarray(line.color_bgr, float) - asphalt)
    lit_paint, lit_road = _tone_curve(lighting, np.stack([painted, asphalt]))
    return _luma(tuple(lit_paint)) - _luma(tuple(lit_road))


def _drop_hidden_lines(params: SceneParams, min_points: int) -> SceneParams:
    """Remove lines that show fewer than `min_points` label rows (they would be unlabelled paint)."""
    keep = tuple(
        line for line, xs in zip(params.lines, lane_labels(params)) if sum(x != ABSENT for x in xs) >= min_points
    )
    return replace(params, lines=keep)


def _sample_vehicles(rng: np.random.Generator, params: SceneParams, config: SynthConfig) -> tuple[Vehicle, ...]:
    """0..max_vehicles vehicles in the labelled lanes, never overlapping each other."""
    if rng.random() >= config.vehicle_prob or config.max_vehicles < 1:
        return ()
    lanes = [(a.offset + b.offset) / 2 for a, b in zip(params.lines, params.lines[1:])]
    placed: list[Vehicle] = []
    for _ in range(int(rng.integers(1, config.max_vehicles + 1))):
        lane = lanes[int(rng.integers(len(lanes)))]
        ego_lane = abs(lane) < params.road.lane_width / 2
        truck = rng.random() < 0.25
        vehicle = Vehicle(
            lateral=lane + rng.normal(0, 0.25),
            distance=rng.uniform(13 if ego_lane else 8, 70),
            width=rng.uniform(2.3, 2.55) if truck else rng.uniform(1.65, 1.95),
            height=rng.uniform(3.0, 4.0) if truck else rng.uniform(1.35, 1.9),
            length=rng.uniform(9, 16) if truck else rng.uniform(4.0, 5.0),
            body_bgr=_vehicle_color(rng, truck),
            truck=bool(truck),
        )
        clash = any(
            abs(v.lateral - vehicle.lateral) < 2.5
            and vehicle.distance < v.distance + v.length + 3
            and v.distance < vehicle.distance + vehicle.length + 3
            for v in placed
        )
        if not clash and vehicle.distance + vehicle.length < params.road.length:
            placed.append(vehicle)
    return tuple(sorted(placed, key=lambda v: -v.distance))  # far to near = drawing order


def _vehicle_color(rng: np.random.Generator, truck: bool) -> Color:
    """A typical car paint or trailer colour (BGR)."""
    palette = [
        (235, 235, 235), (180, 180, 185), (40, 40, 45), (30, 30, 170), (140, 70, 30), (90, 90, 95), (60, 120, 60)
    ]
    if truck and rng.random() < 0.6:
        palette = [(225, 225, 225), (200, 205, 210), (150, 150, 160)]
    base = palette[int(rng.integers(len(palette)))]
    return _clip_color(c + rng.normal(0, 8) for c in base)


def _sample_shadows(rng: np.random.Generator, params: SceneParams) -> tuple[Shadow, ...]:
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


# --------------------------------------------------------------------------------------------------
# Ground truth
# --------------------------------------------------------------------------------------------------


def visible_end(line: LaneLine, distance_travelled: float = 0.0) -> float:
    """Distance where the line's paint (and label) ends; a dashed line ends at the end of its last dash."""
    end = line.max_distance
    if not line.dashed:
        return end
    period = line.dash_length + line.gap_length
    into_period = (end + distance_travelled + line.dash_phase) % period
    return end - max(0.0, into_period - line.dash_length)


def painted_intervals(
    line: LaneLine, z_near: float, z_far: float, distance_travelled: float = 0.0
) -> list[tuple[float, float]]:
    """The [z0, z1] distance intervals that carry paint within [z_near, z_far]."""
    if z_far <= z_near:
        return []
    if not line.dashed:
        return [(z_near, z_far)]
    period = line.dash_length + line.gap_length
    shift = distance_travelled + line.dash_phase
    out = []
    for k in range(math.floor((z_near + shift) / period), math.floor((z_far + shift) / period) + 1):
        z0, z1 = max(k * period - shift, z_near), min(k * period - shift + line.dash_length, z_far)
        if z1 > z0 + 1e-6:
            out.append((z0, z1))
    return out


def lane_labels(params: SceneParams) -> list[list[int]]:
    """tuSimple lanes: the rounded x of each line centre at every H_SAMPLES row, ABSENT where not visible."""
    camera = params.camera
    rows = np.asarray(H_SAMPLES, float)
    below = rows - camera.horizon > 1e-6
    z = np.where(below, camera.focal * camera.height / np.where(below, rows - camera.horizon, 1.0), np.inf)
    lanes = []
    for line in params.lines:
        end = min(visible_end(line, params.distance_travelled), params.road.length)
        seen = below & (z <= end)
        zs = np.where(seen, z, 1.0)
        u, _ = camera.project(params.ground_x(line.offset, zs), zs)
        x = np.round(u).astype(int)
        seen &= (x >= 0) & (x <= _W - 1)
        lanes.append([int(v) if ok else ABSENT for v, ok in zip(x, seen)])
    return lanes


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


def render_scene(params: SceneParams) -> tuple[np.ndarray, list[list[int]]]:
    """Render the BGR uint8 [720, 1280, 3] image and its tuSimple lanes at H_SAMPLES."""
    rng = np.random.default_rng(params.texture_seed)
    tex = _texture_maps(rng, params)
    shade = _shadow_factor(params)
    background = _background(params, tex)
    if shade is not None:
        background *= shade[:, :, None]
    out = cv2.resize(cv2.convertScaleAbs(background), (_W, _H), interpolation=cv2.INTER_LINEAR)
    _paint_markings(out, params, tex, shade)
    _draw_guardrails(out, params)
    for vehicle in params.vehicles:
        _draw_vehicle(out, params, vehicle)
    noise_rng = rng if params.noise_seed is None else np.random.default_rng(params.noise_seed)
    out = _apply_lighting(out, params.lighting, noise_rng)
    return out, lane_labels(params)


def _scaled(poly: np.ndarray, factor: int) -> np.ndarray:
    """Full-resolution pixel coordinates -> those of an image downscaled `factor` times (cv2.resize convention)."""
    return (poly + 0.5) / factor - 0.5


def _full_rows(factor: int, count: int) -> np.ndarray:
    """Full-resolution row coordinate of each row of an image downscaled `factor` times."""
    return (np.arange(count, dtype=np.float32) + 0.5) * factor - 0.5


def _texture_maps(rng: np.random.Generator, params: SceneParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smooth noise in ~[-0.5, 0.5] at background resolution: terrain, road (with tyre tracks), sky/paint wear."""
    low_w, low_h = _W // _LOW, _H // _LOW
    maps = []
    for channel in range(3):
        coarse = rng.random((low_h // 8, low_w // 8), dtype=np.float32)
        low = 0.7 * cv2.resize(coarse, (low_w, low_h), interpolation=cv2.INTER_CUBIC)
        low += 0.3 * rng.random((low_h, low_w), dtype=np.float32) - 0.5
        if channel == 1 and params.road.tyre_tracks > 0:
            low -= params.road.tyre_tracks / max(params.road.texture, 1e-3) * _tyre_tracks(params, low.shape)
        maps.append(cv2.resize(low, (_W // _BG, _H // _BG), interpolation=cv2.INTER_LINEAR))
    return tuple(maps)


def _tyre_tracks(params: SceneParams, shape: tuple[int, int]) -> np.ndarray:
    """Soft 0..1 map of the two wheel paths of every labelled lane, at 1/_LOW resolution."""
    tracks = np.zeros(shape, np.float32)
    for a, b in zip(params.lines, params.lines[1:]):
        centre = (a.offset + b.offset) / 2
        for dx in (-0.8, 0.8):
            _fill_ground_polygon(tracks, params, centre + dx - 0.3, centre + dx + 0.3, 1.0, factor=_LOW, aa=False)
    return cv2.GaussianBlur(tracks, (0, 0), 1.0)


def _haze_at_rows(params: SceneParams, rows: np.ndarray) -> np.ndarray:
    """Haze blend factor (1 = pure haze colour) of the ground seen at full-resolution image rows."""
    camera = params.camera
    dv = np.asarray(rows, np.float32) - camera.horizon
    z = camera.focal * camera.height / np.maximum(dv, 1e-3)
    return np.where(dv > 0, 1.0 - np.exp(-z / params.scenery.visibility), 1.0).astype(np.float32)


def _background(params: SceneParams, tex: tuple[np.ndarray, ...]) -> np.ndarray:
    """Float32 BGR image at 1/_BG resolution: sky, tree line, terrain, verge and asphalt (no markings)."""
    sc, road, camera = params.scenery, params.road, params.camera
    bw, bh = _W // _BG, _H // _BG
    full_rows = _full_rows(_BG, bh)
    first_ground = int(np.searchsorted(full_rows, camera.horizon, side="right"))
    image = np.empty((bh, bw, 3), np.float32)

    # sky: vertical gradient + clouds
    t = np.clip(full_rows[:first_ground] / max(camera.horizon, 1.0), 0, 1) ** 1.5
    sky_view = image[:first_ground]
    sky_view[:] = _lerp_rows(sc.sky_top_bgr, sc.sky_horizon_bgr, t)[:, None, :]
    if sc.clouds > 0:
        cloud = np.clip(tex[2][:first_ground] * (2.2 * sc.clouds) + 0.2 * sc.clouds, 0, 1)
        sky_view += cv2.merge([cloud] * 3) * (np.float32(245) - sky_view)

    # tree / hill band right above the horizon
    if sc.tree_line_px >= 1 and first_ground > 0:
        _draw_tree_line(image, params, tex, full_rows, first_ground)

    # ground: terrain, verge, road; all hazed by distance
    rows = slice(first_ground, bh)
    h = _haze_at_rows(params, full_rows[rows])[:, None]
    horizon_col = np.asarray(sc.sky_horizon_bgr, np.float32)
    ground = image[rows]
    terrain = np.asarray(sc.terrain_bgr, np.float32) * (1 - h) + horizon_col * h
    _rows_times(terrain, 1 + 0.35 * tex[0][rows], dst=ground)
    road_tex = tex[1][rows]
    for lat_l, lat_r, colour, amp in (
        (road.edge_left - road.verge_width, road.edge_right + road.verge_width, road.verge_bgr, 0.3),
        (road.edge_left, road.edge_right, road.asphalt_bgr, 2 * road.texture),
    ):
        mask = np.zeros((bh, bw), np.uint8)
        _fill_ground_polygon(mask, params, lat_l, lat_r, 255, factor=_BG, aa=False)
        surface = np.asarray(colour, np.float32) * (1 - h) + horizon_col * h
        _paste(ground, surface, 1 + amp * road_tex, mask[rows])
    return image


def _lerp_rows(a: Color, b: Color, t: np.ndarray) -> np.ndarray:
    """Per-row colour interpolation a->b, shape [len(t), 3]."""
    a_, b_ = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return a_[None] + t[:, None].astype(np.float32) * (b_ - a_)[None]


def _rows_times(colour_rows: np.ndarray, modulation: np.ndarray, dst: np.ndarray | None = None) -> np.ndarray:
    """[R, W, 3] image colour_rows[r, c] * modulation[r, w] (per-row colour times a brightness map)."""
    merged = cv2.merge([modulation * colour_rows[:, c : c + 1] for c in range(3)], dst=dst)
    if dst is not None and not np.shares_memory(merged, dst):  # OpenCV chose not to write in place
        dst[...] = merged
    return merged


def _paste(dst: np.ndarray, colour_rows: np.ndarray, modulation: np.ndarray, mask: np.ndarray) -> None:
    """In place dst = colour_rows * modulation where the mask is set (only rows that hold mask pixels are computed)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return
    r = slice(rows[0], rows[-1] + 1)
    target = dst[r]
    pasted = cv2.copyTo(_rows_times(colour_rows[r], modulation[r]), mask[r], target)
    if not np.shares_memory(pasted, target):  # OpenCV chose not to write in place
        target[...] = pasted


def _draw_tree_line(
    image: np.ndarray, params: SceneParams, tex: tuple[np.ndarray, ...], full_rows: np.ndarray, first_ground: int
) -> None:
    """A jagged band of trees/hills whose base sits on the horizon (background resolution)."""
    sc = params.scenery
    bw = image.shape[1]
    rng = np.random.default_rng(params.texture_seed ^ 0x7EE5)
    knots = rng.random(bw // 12 + 2).astype(np.float32)
    profile = cv2.resize(knots[None, :], (bw, 1), interpolation=cv2.INTER_CUBIC)[0]
    profile = np.clip(profile * 0.8 + 0.25 * rng.random(bw, dtype=np.float32), 0, 1) * sc.tree_line_px
    top = max(first_ground - int(math.ceil(sc.tree_line_px / _BG)) - 1, 0)
    band = image[top:first_ground]
    inside = full_rows[top:first_ground, None] >= params.camera.horizon - profile[None, :]
    inside = inside.astype(np.float32)[..., None]
    colour = np.asarray(sc.tree_bgr, np.float32) * 0.75 + np.asarray(sc.sky_horizon_bgr, np.float32) * 0.25
    trees = colour * (1 + 0.5 * tex[0][top:first_ground, :, None])
    band += inside * (trees - band)


def _fill_ground_polygon(
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
    z_near = camera.depth_at_row(_H + 2)
    z_far = min(params.road.length, camera.depth_at_row(camera.horizon + 0.3))
    poly = _strip_polygon(params, lat_left, lat_right, z_near, z_far)
    _fill(mask, [_scaled(poly, factor)], value, aa)


def _depth_samples(camera: Camera, z0: float, z1: float, row_step: float = 4.0) -> np.ndarray:
    """Distances from z0 to z1 spaced evenly in image rows (about `row_step` px apart)."""
    rows = abs(camera.row_at_depth(z0) - camera.row_at_depth(z1))
    n = int(min(max(math.ceil(rows / row_step) + 1, 2), 400))
    return 1.0 / np.linspace(1.0 / z0, 1.0 / z1, n)


def _strip_polygon(params: SceneParams, lat_left: float, lat_right: float, z0: float, z1: float) -> np.ndarray:
    """Image polygon [N, 2] (float px) of the ground strip lat_left..lat_right between distances z0 and z1."""
    z = _depth_samples(params.camera, z0, z1)
    ul, v = params.camera.project(params.ground_x(lat_left, z), z)
    ur, _ = params.camera.project(params.ground_x(lat_right, z), z)
    return np.concatenate([np.stack([ul, v], 1), np.stack([ur, v], 1)[::-1]])


def _fill(img: np.ndarray, polys: list[np.ndarray], value, aa: bool = True) -> None:
    """cv2.fillPoly with sub-pixel vertices (float px) and optional anti-aliasing."""
    pts = [np.round(np.clip(p, -1e5, 1e5) * _ONE).astype(np.int32) for p in polys if len(p) >= 3]
    if pts:
        colour = value if isinstance(value, tuple) else (value,) * 3
        cv2.fillPoly(img, pts, colour, cv2.LINE_AA if aa else cv2.LINE_8, _SHIFT)


def marking_polygons(params: SceneParams, line: LaneLine) -> list[np.ndarray]:
    """Image polygons (float px) of every painted piece (dash) of one lane line."""
    camera = params.camera
    z_near = camera.depth_at_row(_H + 2)
    z_far = min(visible_end(line, params.distance_travelled), params.road.length)
    half = line.width / 2
    return [
        _strip_polygon(params, line.offset - half, line.offset + half, z0, z1)
        for z0, z1 in painted_intervals(line, z_near, z_far, params.distance_travelled)
    ]


def _paint_markings(
    image: np.ndarray, params: SceneParams, tex: tuple[np.ndarray, ...], shade: np.ndarray | None
) -> None:
    """Alpha-blend all lane markings (anti-aliased, hazed, worn, shadowed) into the full-size uint8 image."""
    top = min(max(int(math.floor(params.camera.horizon)), 0), _H - 1)  # no paint above the horizon
    alpha = np.zeros((_H - top, _W), np.uint8)
    paint = np.zeros((_H - top, _W, 3), np.uint8)
    for line in params.lines:
        polys = [poly - np.array([0.0, top]) for poly in marking_polygons(params, line)]
        if not polys:
            continue
        _fill(alpha, polys, 255.0 * line.opacity, aa=True)
        colour = tuple(float(c) for c in line.color_bgr)
        _fill(paint, polys, colour, aa=False)
        pts = [np.round(np.clip(p, -1e5, 1e5) * _ONE).astype(np.int32) for p in polys]
        cv2.polylines(paint, pts, True, colour, 4, cv2.LINE_8, _SHIFT)  # covers the anti-aliased fringe
    found = cv2.findNonZero(alpha)
    if found is None:
        return
    xs, ys_local = found[:, 0, 0], found[:, 0, 1]
    ys = ys_local + top
    a = alpha[ys_local, xs].astype(np.float32) * np.float32(1 / 255)
    wear = params.road.marking_wear
    if wear > 0:
        a *= np.clip(1 - wear * (1.6 * tex[2][ys // _BG, xs // _BG] + 0.5), 0, 1)  # mean 1 - wear / 2
    h = _haze_at_rows(params, np.arange(_H))[ys, None]
    horizon_col = np.asarray(params.scenery.sky_horizon_bgr, np.float32)
    target = paint[ys_local, xs].astype(np.float32) * (1 - h) + horizon_col * h
    if shade is not None:
        target *= shade[ys // _BG, xs // _BG, None]
    pixels = image[ys, xs].astype(np.float32)
    image[ys, xs] = np.clip(pixels + a[:, None] * (target - pixels) + 0.5, 0, 255).astype(np.uint8)


def _shadow_factor(params: SceneParams) -> np.ndarray | None:
    """Soft multiplicative shading (1 = lit) at background resolution from cast shadows, or None."""
    if not params.shadows and not params.vehicles:
        return None
    camera = params.camera
    low = np.zeros((_H // _LOW, _W // _LOW), np.float32)
    z_min = camera.depth_at_row(_H + 40)
    by_softness: dict[float, list[tuple[np.ndarray, float]]] = {}
    for shadow in params.shadows:
        lat = np.array([p[0] for p in shadow.polygon], float)
        z = np.array([p[1] for p in shadow.polygon], float) - params.distance_travelled
        if z.max() <= z_min:
            continue
        poly = _ground_polygon_image(params, lat, np.maximum(z, z_min))
        by_softness.setdefault(round(shadow.softness, 1), []).append((poly, shadow.strength))
    for v in params.vehicles:  # dark contact shadow under each vehicle
        lat = np.array([-1, 1, 1, -1]) * (v.width / 2 + 0.15) + v.lateral
        z = np.array([v.distance - 0.4, v.distance - 0.4, v.distance + v.length, v.distance + v.length])
        if z.max() > z_min:
            by_softness.setdefault(1.0, []).append((_ground_polygon_image(params, lat, np.maximum(z, z_min)), 0.7))
    for softness, items in by_softness.items():
        layer = np.zeros_like(low)
        for poly, strength in items:
            _fill(layer, [_scaled(poly, _LOW)], strength, aa=False)
        layer = cv2.GaussianBlur(layer, (0, 0), max(softness / _LOW, 0.5))
        np.maximum(low, layer, out=low)
    if not low.any():
        return None
    return 1 - cv2.resize(low, (_W // _BG, _H // _BG), interpolation=cv2.INTER_LINEAR)


def _ground_polygon_image(params: SceneParams, lat: np.ndarray, z: np.ndarray) -> np.ndarray:
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


def _haze_color(params: SceneParams, colour: Color, z: float) -> tuple[float, float, float]:
    """Colour seen through the distance haze at distance z."""
    k = 1 - math.exp(-z / params.scenery.visibility)
    return tuple(float(c * (1 - k) + hc * k) for c, hc in zip(colour, params.scenery.sky_horizon_bgr))


def _draw_guardrails(image: np.ndarray, params: SceneParams) -> None:
    """Metal guard rails (rail band plus posts) just beyond the road verge."""
    sc, road, camera = params.scenery, params.road, params.camera
    sides = [
        (road.edge_left - road.verge_width - 0.3, sc.guardrail_left),
        (road.edge_right + road.verge_width + 0.3, sc.guardrail_right),
    ]
    z_near = camera.depth_at_row(_H + 60)
    z_far = min(road.length, 250.0)
    metal = (175.0, 178.0, 180.0)
    for lat, present in sides:
        if not present:
            continue
        z = _depth_samples(camera, z_near, z_far, row_step=3.0)
        x = params.ground_x(lat, z)
        u, v_top = camera.project(x, z, 0.8)
        _, v_mid = camera.project(x, z, 0.55)
        for i in range(len(z) - 1):
            quad = np.array([[u[i], v_top[i]], [u[i + 1], v_top[i + 1]], [u[i + 1], v_mid[i + 1]], [u[i], v_mid[i]]])
            _fill(image, [quad], _haze_color(params, metal, z[i]))
        for zp in np.arange(math.ceil(z_near / 4) * 4, min(z_far, 80.0), 4.0):
            xp = float(params.ground_x(lat, np.float64(zp)))
            (ua, ub), v0 = camera.project(np.array([xp - 0.08, xp + 0.08]), zp, 0.0)
            v1 = camera.row_at_depth(zp) - camera.focal * 0.55 / zp
            quad = np.array([[ua, v1], [ub, v1], [ub, v0], [ua, v0]])
            _fill(image, [quad], _haze_color(params, (90.0, 90.0, 95.0), zp))


def _draw_vehicle(image: np.ndarray, params: SceneParams, vehicle: Vehicle) -> None:
    """A box vehicle: visible side and roof, rear face with window, lights, plate and wheels."""
    camera = params.camera
    z0, z1 = vehicle.distance, vehicle.distance + vehicle.length
    if z0 <= 0.5:
        return
    x0 = float(params.ground_x(vehicle.lateral, np.float64(z0)))  # centre of the rear face
    x1 = float(params.ground_x(vehicle.lateral, np.float64(z1)))  # centre of the front face
    half, top, base = vehicle.width / 2, vehicle.height, 0.25  # base: ground clearance of the body

    def paint(corners: list[tuple[float, float, float]], colour: Color, k: float = 1.0) -> None:
        """Fill the polygon of camera-frame corners (x, y up, z), hazed and shaded by k."""
        xs, ys, zs = (np.array(c, float) for c in zip(*corners))
        u, v = camera.project(xs, zs, ys)
        _fill(image, [np.stack([u, v], 1)], _haze_color(params, _clip_color(c * k for c in colour), z0))

    def rear(left: float, right: float, low: float, high: float, colour: Color, k: float = 1.0) -> None:
        """Fill a rectangle on the rear face (offsets from its centre, heights above the road)."""
        paint([(x0 + left, low, z0), (x0 + right, low, z0), (x0 + right, high, z0), (x0 + left, high, z0)], colour, k)

    body = vehicle.body_bgr
    if abs(x0) > half:  # the side facing the camera
        sx = -half if x0 > 0 else half
        paint([(x0 + sx, base, z0), (x0 + sx, top, z0), (x1 + sx, top, z1), (x1 + sx, base, z1)], body, 0.72)
    if top < camera.height:  # roof, seen from above
        paint([(x0 - half, top, z0), (x0 + half, top, z0), (x1 + half, top, z1), (x1 - half, top, z1)], body, 1.08)
    for wx in (-(half - 0.35), half - 0.35):  # wheels below the body
        rear(wx - 0.16, wx + 0.16, 0.0, 0.5, (25, 25, 25))
    rear(-half, half, base, top, body, 0.92)
    rear(-half, half, base, base + 0.22, (45, 45, 48))  # bumper
    if vehicle.truck:  # trailer doors: a dark seam; lights low
        rear(-0.02, 0.02, base + 0.3, top - 0.1, body, 0.55)
        light_y = base + 0.3
    else:  # rear window
        paint(
            [(x0 - half * 0.82, top * 0.62, z0), (x0 + half * 0.82, top * 0.62, z0),
             (x0 + half * 0.7, top * 0.93, z0), (x0 - half * 0.7, top * 0.93, z0)],
            (55, 45, 40),
        )
        light_y = top * 0.45
    for lx in (-(half - 0.2), half - 0.2):
        rear(lx - 0.15, lx + 0.15, light_y, light_y + 0.14, (40, 40, 200))
    rear(-0.26, 0.26, base + 0.28, base + 0.40, (225, 228, 230))  # number plate


def _noise_table(sigma: float) -> np.ndarray:
    """uint8 LUT mapping uniform bytes to 128 + Gaussian noise of the given sigma (inverse CDF)."""
    q = [NormalDist().inv_cdf((k + 0.5) / 256) for k in range(256)]
    return np.clip(np.round(128 + sigma * np.asarray(q)), 0, 255).astype(np.uint8)


def _tone_curve(lighting: Lighting, bgr: np.ndarray) -> np.ndarray:
    """Global brightness/contrast/gamma/colour cast applied to BGR values [..., 3] on the 0..255 scale."""
    x = np.clip((np.asarray(bgr, float) / 255 - 0.5) * lighting.contrast + 0.5 + lighting.brightness, 0, 1)
    return np.clip(x**lighting.gamma * np.asarray(lighting.gain_bgr, float), 0, 1) * 255


def _apply_lighting(image: np.ndarray, lighting: Lighting, rng: np.random.Generator) -> np.ndarray:
    """Brightness/contrast/gamma/colour cast via a LUT, then optional blur and sensor noise (in place)."""
    lut = _tone_curve(lighting, np.repeat(np.arange(256, dtype=np.float64)[:, None], 3, axis=1))
    out = cv2.LUT(image, np.round(lut).astype(np.uint8).reshape(256, 1, 3), dst=image)
    if lighting.blur_sigma > 0:
        out = cv2.GaussianBlur(out, (0, 0), lighting.blur_sigma, dst=out)
    if lighting.noise_sigma > 0:  # luminance noise, the same offset on all three channels of a pixel
        noise = rng.integers(0, 256, out.shape[:2], dtype=np.uint8)
        noise = cv2.LUT(noise, _noise_table(lighting.noise_sigma), dst=noise)
        out = cv2.addWeighted(out, 1.0, cv2.cvtColor(noise, cv2.COLOR_GRAY2BGR), 1.0, -128.0, dst=out)
    return out


# --------------------------------------------------------------------------------------------------
# Dataset writer
# --------------------------------------------------------------------------------------------------


def raw_file_for(name: str, index: int) -> str:
    """tuSimple-style relative image path of frame `index`: clips/<name>_<clip>/<frame>/20.jpg."""
    return f"clips/{name}_{index // FRAMES_PER_CLIP:04d}/{index:06d}/20.jpg"


def sample_frame(seed: int, index: int, config: SynthConfig = DEFAULT_CONFIG) -> SceneParams:
    """The scene of frame `index` of a dataset generated with `seed` (independent of the frame count)."""
    return sample_scene(frame_rng(seed, index), config)


def _make_frame(job: tuple[str, int, int, str, SynthConfig]) -> str:
    """Render, write one frame's JPEG and return its label line (worker entry point)."""
    out_dir, seed, index, name, config = job
    image, lanes = render_scene(sample_frame(seed, index, config))
    raw_file = raw_file_for(name, index)
    path = Path(out_dir) / raw_file
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:  # pragma: no cover
        raise RuntimeError(f"JPEG encoding failed for {raw_file}")
    path.write_bytes(jpeg.tobytes())
    return LaneRecord(raw_file, H_SAMPLES, tuple(tuple(lane) for lane in lanes)).to_json()


def _init_worker() -> None:
    """Keep each worker process on one core."""
    cv2.setNumThreads(1)


def _run_jobs(jobs: list, workers: int) -> Iterator[str]:
    """Label lines in job order, computed in this process or in spawn-started worker processes.

    A worker that cannot start or dies (e.g. a `__main__` that spawn cannot re-import) raises
    BrokenProcessPool here instead of hanging.
    """
    if workers == 1:
        yield from map(_make_frame, jobs)
        return
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker) as pool:
        yield from pool.map(_make_frame, jobs, chunksize=4)


def generate_dataset(
    out_dir: str | os.PathLike,
    count: int,
    seed: int,
    name: str = "synth",
    workers: int = 1,
    progress: bool = False,
    config: SynthConfig = DEFAULT_CONFIG,
) -> Path:
    """Write `count` frames + label_data_<name>.json (tuSimple layout) under out_dir; return the label file."""
    if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 1:
        raise ValueError(f"count must be a positive integer, got {count!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ValueError(f"name must match {_NAME_RE.pattern} (used in file names), got {name!r}")
    out = Path(out_dir)
    label_path = out / f"label_data_{name}.json"
    if label_path.exists():
        raise ValueError(f"out_dir {str(out)!r} already holds {label_path.name}; refusing to overwrite it")
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {str(out)!r} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    partial = label_path.with_name(label_path.name + ".partial")
    jobs = [(str(out), int(seed), i, name, config) for i in range(int(count))]
    step = max(1, count // 100)
    with open(partial, "w", encoding="utf-8") as fh:
        for done, line in enumerate(_run_jobs(jobs, int(min(workers, count))), start=1):
            fh.write(line + "\n")
            if progress and (done % step == 0 or done == count):
                end = "\n" if done == count else ""
                print(f"\r{label_path.name}: {done}/{count} frames", end=end, file=sys.stderr, flush=True)
    if label_path.exists():  # created concurrently by someone else: keep theirs, keep ours as .partial
        raise ValueError(f"out_dir {str(out)!r} gained {label_path.name} while generating; ours is {partial.name}")
    os.replace(partial, label_path)
    return label_path
