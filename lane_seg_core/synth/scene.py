"""The scene description: camera, road, lane lines, vehicles, shadows, scenery, lighting (pure data)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np

IMAGE_SIZE = (1280, 720)  # (width, height), tuSimple's frame size
IMG_W, IMG_H = IMAGE_SIZE
LOW_RES = 4  # texture / shadow maps are drawn at 1/LOW_RES resolution
BG_RES = 2  # the background (sky, terrain, asphalt) is rendered at 1/BG_RES resolution
Color = tuple[float, float, float]  # BGR, 0..255


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



def luma(bgr: Color) -> float:
    """Rec.601 luminance of a BGR colour."""
    return 0.114 * bgr[0] + 0.587 * bgr[1] + 0.299 * bgr[2]


def clip_color(c: Iterable[float]) -> Color:
    """Clamp a colour to 0..255 floats."""
    return tuple(float(np.clip(x, 0, 255)) for x in c)
