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
JPEG_QUALITY = 90  # of the dataset writer, unless a frame's Lighting says otherwise


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
    double_gap: float = 0.0  # > 0: two parallel lines this far apart (m), labelled once at their centre


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
class Barrier:
    """A concrete barrier or jersey wall along the road; `lateral` is the foot of its road-facing side."""

    lateral: float  # m, road coordinates
    side: int  # -1 left of the road, +1 right
    height: float  # m
    top_width: float  # m
    face_bgr: Color
    jersey: bool  # sloped lower face (New Jersey profile) instead of a vertical wall
    stain: float  # 0..1 darkening of the lowest part (road dirt, spray)


@dataclass(frozen=True)
class GroundStrip:
    """An extra flat surface between two lateral offsets, e.g. the far carriageway or a paved shoulder."""

    lat_left: float
    lat_right: float
    bgr: Color
    texture: float  # relative amplitude of the blotches


@dataclass(frozen=True)
class Overpass:
    """A bridge deck across the road at `distance`, between heights `bottom` and `bottom + thickness` (m)."""

    distance: float
    bottom: float
    thickness: float
    bgr: Color


@dataclass(frozen=True)
class Hood:
    """The ego car's bonnet at the image bottom; its top edge is row `top` at the centre, `sag` px lower at the sides."""

    top: float
    sag: float
    bgr: Color

    def top_row(self, u: np.ndarray, width: float) -> np.ndarray:
        """Image row of the hood's top edge at columns u."""
        return self.top + self.sag * ((np.asarray(u, float) - width / 2) / (width / 2)) ** 2


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
    motion_blur: float = 0.0  # length of a vertical motion-blur streak, px (0 = none)
    vignette: float = 0.0  # darkening of the corners, 0..1
    glare: float = 0.0  # strength of a sun glare (bright veil around glare_xy), 0..1
    glare_xy: tuple[float, float] = (0.0, 0.0)  # px
    jpeg_quality: int = JPEG_QUALITY  # quality the dataset writer encodes the frame with


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
    barriers: tuple[Barrier, ...] = ()
    strips: tuple[GroundStrip, ...] = ()
    decoys: tuple[LaneLine, ...] = ()  # painted or dark lines that are not lane markings (never labelled)
    overpasses: tuple[Overpass, ...] = ()
    hood: Hood | None = None

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
    # The highway world (HIGHWAY_CONFIG); all 0 reproduce the original world frame for frame.
    barrier_prob: float = 0.0  # per side: a concrete barrier or jersey wall
    far_carriageway_prob: float = 0.0  # the opposite carriageway beyond the left edge, with its own (unlabelled) lines
    decoy_prob: float = 0.0  # tar seams, slab joints and old paint that are not lanes
    overpass_prob: float = 0.0
    hood_prob: float = 0.0
    wide_camera_prob: float = 0.0  # dashcam-like cameras: wider field of view, other heights and pitches
    effects_prob: float = 0.0  # vignetting, glare, motion blur, JPEG artefacts, harsher exposure
    verge_variety: bool = False  # verges of dirt, grass and gravel as well as grey
    double_line_prob: float = 0.0
    botts_dots_prob: float = 0.0
    fixed_camera: tuple[float, float, float] | None = None  # (focal px, height m, horizon row): one camera
    layouts: str = ""  # tuSimple label lines (file or folder) whose lanes the roads copy; "" = random layouts


DEFAULT_CONFIG = SynthConfig()
HIGHWAY_CONFIG = SynthConfig(
    vehicle_prob=0.65,
    max_vehicles=7,
    guardrail_prob=0.3,
    shadow_prob=0.4,
    barrier_prob=0.4,
    far_carriageway_prob=0.3,
    decoy_prob=0.5,
    overpass_prob=0.08,
    hood_prob=0.2,
    wide_camera_prob=0.35,
    effects_prob=0.6,
    verge_variety=True,
    double_line_prob=0.12,
    botts_dots_prob=0.08,
)
WORLDS = {"basic": DEFAULT_CONFIG, "highway": HIGHWAY_CONFIG}  # `lane-seg synth --world`



def luma(bgr: Color) -> float:
    """Rec.601 luminance of a BGR colour."""
    return 0.114 * bgr[0] + 0.587 * bgr[1] + 0.299 * bgr[2]


def clip_color(c: Iterable[float]) -> Color:
    """Clamp a colour to 0..255 floats."""
    return tuple(float(np.clip(x, 0, 255)) for x in c)
