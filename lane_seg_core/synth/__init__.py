"""Synthetic road scenes written in tuSimple's exact dataset format (clips/*/20.jpg + label_data_*.json).

World model: a pinhole camera at height `h` above a flat road looks forward (+Z). Everything on the road is
placed in road coordinates (lateral offset from the camera at Z=0, distance along the road) and bent by the
road centreline ``c(Z) = (heading - yaw) * Z + curvature * Z**2 / 2``; a ground point (X, Z) projects to
``u = cx + f * X / Z`` and ``v = horizon + f * h / Z``. Lane markings are filled polygons between their
projected left/right edges, so their pixel width shrinks with distance and the ground truth (the projected
centre at each tuSimple row) is exactly the centre of what is painted. Rendering is a pure function of
`SceneParams`; frame *i* of a dataset is sampled from ``default_rng([seed, i])``.

One module per job: `scene` (the data), `camera`, `layout` (lanes and road shape), `surface` (asphalt,
terrain, sky), `markings`, `roadside`, `vehicles`, `shadows`, `photometry`, `labels`, `render` (one frame) and
`writer` (a dataset on disk).
"""

from ..tusimple import ABSENT, H_SAMPLES
from .labels import lane_labels, painted_intervals, visible_end
from .markings import marking_polygons
from .render import frame_rng, render_scene, sample_frame, sample_scene
from .scene import (
    DEFAULT_CONFIG,
    HIGHWAY_CONFIG,
    IMAGE_SIZE,
    JPEG_QUALITY,
    WORLDS,
    Barrier,
    Camera,
    GroundStrip,
    Hood,
    LaneLine,
    Lighting,
    Overpass,
    Road,
    SceneParams,
    Scenery,
    Shadow,
    SynthConfig,
    Vehicle,
)
from .writer import FRAMES_PER_CLIP, generate_dataset, raw_file_for

__all__ = [
    "ABSENT", "H_SAMPLES", "DEFAULT_CONFIG", "HIGHWAY_CONFIG", "WORLDS", "FRAMES_PER_CLIP", "IMAGE_SIZE", "JPEG_QUALITY",
    "Barrier", "Camera", "GroundStrip", "Hood", "LaneLine", "Overpass", "Lighting", "Road", "SceneParams", "Scenery", "Shadow", "SynthConfig", "Vehicle",
    "frame_rng", "generate_dataset", "lane_labels", "marking_polygons", "painted_intervals", "raw_file_for",
    "render_scene", "sample_frame", "sample_scene", "visible_end",
]
