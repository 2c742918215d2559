"""A continuous synthetic drive for demos: one road with bends, a lane change, moving dashes and shadows.

The drive is laid out once in road coordinates: lines, road edges, shadows and other vehicles have fixed
lateral positions (metres right of where the ego car starts) and along-road distances s. At time t the car is
at s = speed * t and at lateral position ego(s), which moves by one lane width during the lane change. Each
frame is an ordinary `SceneParams` seen from there: every lateral position is taken relative to the car, the
road heading is -d ego / ds (the car points where it steers), the curvature is the constant one that best
fits the bends of the road ahead, `distance_travelled` = s slides dashes and shadows towards the camera, and
the sensor noise (`noise_seed`) changes per frame while the textures (`texture_seed`) stay.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import numbers
import sys
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from .synth import ABSENT, DEFAULT_CONFIG, LaneLine, Road, SceneParams, Shadow, Vehicle, lane_labels, render_scene
from .synth.camera import sample_camera
from .synth.layout import sample_road
from .synth.photometry import sample_visible_lighting
from .synth.roadside import sample_scenery
from .synth.vehicles import vehicle_color
from .synth.writer import init_worker
from .tusimple import H_SAMPLES

if TYPE_CHECKING:
    from .inference import LaneDetector
    from .metrics import TuSimpleScore

DEFAULT_SEED = 20261125  # the drive `make demo` plays
VIEW_DISTANCE = 100.0  # m of road ahead that the curvature of one frame is fitted to
MIN_VEHICLE_GAP = 10.0  # m; vehicles closer than this are dropped
MAX_VEHICLE_DISTANCE = 150.0  # m; vehicles further ahead are dropped
SHADOW_RANGE = 250.0  # m; shadows further ahead are left out of a frame (beyond any visible paint)
MAX_STEER = 0.2  # rad, the largest heading a lane change may need
MAX_LANE_WIDTH = 3.9  # m, the widest lane synth samples
_STREAM = 0xD21E  # keeps drive random streams apart from dataset frames of the same seed
_LAYOUT_CONFIG = replace(DEFAULT_CONFIG, line_count_weights=(0.0, 0.5, 0.5, 0.0))  # 3 or 4 lines
# Bend schedule: (fraction of the drive distance, curvature in units of 1 / bend_radius), cosine-blended
_BENDS = ((0.0, 0.0), (0.10, 0.0), (0.24, 1.0), (0.36, 1.0), (0.56, -1.0), (0.70, -1.0), (0.86, 0.0), (1.0, 0.0))


@dataclass(frozen=True)
class DriveConfig:
    """Length, frame rate and speed of the drive, its bends and its lane change (times in s from the start)."""

    seconds: float = 10.0
    fps: float = 30.0
    speed: float = 25.0  # m/s
    bend_radius: float = 400.0  # m, of the right and the left bend (>= 300: the built-in model's training range)
    lane_change: bool = True  # one change to a neighbouring lane
    lane_change_seconds: float = 3.0
    lane_change_start: float | None = None  # s; None: centred in the drive
    max_vehicles: int = 2  # vehicles ahead
    shadows: bool = True  # tree and overpass shadows along the road

    def __post_init__(self) -> None:
        _check_range("seconds", self.seconds, 0.1, 600.0)
        _check_range("fps", self.fps, 1.0, 240.0)
        _check_range("speed", self.speed, 1.0, 60.0)
        _check_range("bend_radius", self.bend_radius, 1 / DEFAULT_CONFIG.max_curvature, 1e6)
        _check_flag("lane_change", self.lane_change)
        _check_flag("shadows", self.shadows)
        if isinstance(self.max_vehicles, bool) or not isinstance(self.max_vehicles, numbers.Integral) \
                or not 0 <= self.max_vehicles <= 2:
            raise ValueError(f"DriveConfig.max_vehicles must be an integer in [0, 2], got {self.max_vehicles!r}")
        if self.frames < 2:
            raise ValueError(f"DriveConfig.seconds * fps must give at least 2 frames, got {self.frames}")
        if self.lane_change:
            self._check_lane_change()

    def _check_lane_change(self) -> None:
        """The lane change fits into the drive and needs a plausible steering angle."""
        _check_range("lane_change_seconds", self.lane_change_seconds, 0.5, self.seconds)
        if self.lane_change_start is not None:
            _check_range("lane_change_start", self.lane_change_start, 0.0, self.seconds - self.lane_change_seconds)
        least = lane_change_distance()  # m driven during the change
        if self.lane_change_seconds * self.speed < least:
            raise ValueError(
                f"DriveConfig.lane_change_seconds * speed must be at least {least:.0f} m (a steering angle "
                f"within {MAX_STEER} rad), got {self.lane_change_seconds * self.speed:g} m"
            )

    @property
    def lane_change_at(self) -> float:
        """When the lane change starts, s."""
        if self.lane_change_start is None:
            return (self.seconds - self.lane_change_seconds) / 2
        return self.lane_change_start

    @property
    def frames(self) -> int:
        """Number of frames of the drive."""
        return round(self.seconds * self.fps)

    @property
    def step(self) -> float:
        """Distance driven between two frames, m."""
        return self.speed / self.fps


def lane_change_distance() -> float:
    """The shortest distance (m) a lane change may take: across the widest lane within MAX_STEER."""
    return math.pi * MAX_LANE_WIDTH / (2 * MAX_STEER)


def drive_config(seconds: float = DriveConfig.seconds, fps: float = DriveConfig.fps) -> DriveConfig:
    """The default drive stretched or shrunk to `seconds`: bends and the lane change keep their share of it.

    A drive too short for a lane change at the default speed is driven faster.
    """
    default = DriveConfig()
    if seconds == default.seconds:
        return DriveConfig(fps=fps)
    shortest = lane_change_distance() / default.speed * 1.001
    change = min(max(default.lane_change_seconds * seconds / default.seconds, shortest), seconds)
    speed = max(default.speed, lane_change_distance() / change * 1.001)
    return DriveConfig(seconds=seconds, fps=fps, speed=speed, lane_change_seconds=change)


def _check_flag(name: str, value: bool) -> None:
    """ValueError naming DriveConfig.<name> unless value is True or False."""
    if not isinstance(value, bool):
        raise ValueError(f"DriveConfig.{name} must be True or False, got {value!r}")


def _check_range(name: str, value: float, low: float, high: float) -> None:
    """ValueError naming DriveConfig.<name> unless low <= value <= high (NaN and non-numbers fail)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not low <= value <= high:
        raise ValueError(f"DriveConfig.{name} must be a number in [{low:g}, {high:g}], got {value!r}")


# --------------------------------------------------------------------------------------------------
# The drive's paths: bends and the ego car's lateral position along the distance driven
# --------------------------------------------------------------------------------------------------


def _smooth_step(x: np.ndarray) -> np.ndarray:
    """0 -> 1 raised-cosine step over x in [0, 1] (clamped outside)."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0.0, 1.0))


def bend_curvature(s: np.ndarray, config: DriveConfig) -> np.ndarray:
    """Road curvature (1/m, positive bends right) at along-road distances s: straight, right bend, left bend."""
    frac = np.asarray(s, float) / (config.speed * config.seconds)
    out = np.zeros_like(frac)
    for (f0, k0), (f1, k1) in zip(_BENDS, _BENDS[1:]):
        inside = (frac >= f0) & (frac < f1)
        out[inside] = k0 + (k1 - k0) * _smooth_step((frac[inside] - f0) / (f1 - f0))
    return out / config.bend_radius


def view_curvature(s: np.ndarray, config: DriveConfig) -> np.ndarray:
    """Curvature each frame shows at distances s: the constant curvature that best fits the road ahead.

    The road's true offset from the car's tangent at distance z is x(z) = integral_0^z (z - u) kappa(s + u) du;
    the fit matches x / z (what the image shows, up to the focal length) at distances evenly spread in image
    rows, so the far road moves between frames as much as the true bends make it move, no more.
    """
    s = np.asarray(s, float)
    step = 0.5
    u = np.arange(0.0, VIEW_DISTANCE + step, step)
    kappa = bend_curvature(s[:, None] + u[None, :], config)  # [F, U]
    k1 = _cumulative(kappa, step)  # integral_0^z kappa
    k2 = _cumulative(kappa * u[None, :], step)  # integral_0^z u kappa
    z = 1.0 / np.linspace(1.0 / 5.0, 1.0 / VIEW_DISTANCE, 40)
    at = np.round(z / step).astype(int)
    seen = (z * k1[:, at] - k2[:, at]) / z  # x(z) / z, [F, Z]
    model = 0.5 * z  # x / z of a unit-curvature parabola
    return seen @ model / (model @ model)


def _cumulative(values: np.ndarray, step: float) -> np.ndarray:
    """Trapezoid integral from 0 along the last axis, same shape."""
    out = np.zeros_like(values)
    out[..., 1:] = np.cumsum(0.5 * (values[..., 1:] + values[..., :-1]) * step, axis=-1)
    return out


def ego_lateral(s: np.ndarray, shift: float, config: DriveConfig) -> tuple[np.ndarray, np.ndarray]:
    """The car's lateral position (m) and its slope d/ds at distances s for a lane change by `shift` m."""
    if not config.lane_change:
        zero = np.zeros_like(np.asarray(s, float))
        return zero, zero
    s0 = config.speed * config.lane_change_at
    length = config.speed * config.lane_change_seconds
    x = (np.asarray(s, float) - s0) / length
    inside = (x > 0) & (x < 1)
    slope = np.where(inside, shift * 0.5 * np.pi / length * np.sin(np.pi * np.clip(x, 0, 1)), 0.0)
    return shift * _smooth_step(x), slope


# --------------------------------------------------------------------------------------------------
# Layout: everything fixed to the road, sampled once per drive
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _MovingVehicle:
    """A vehicle in road coordinates: lateral fixed, distance ahead changing at `speed` m/s (negative: nearer)."""

    vehicle: Vehicle  # lateral in road coordinates, distance at t = 0
    speed: float  # m/s relative to the ego car


@dataclass(frozen=True)
class _Layout:
    """The drive in road coordinates: a scene as seen at the start, the lane change and the moving parts."""

    start: SceneParams  # ego at lateral 0, no vehicles, no shadows
    shift: float  # m the car moves right during the lane change (negative: left)
    vehicles: tuple[_MovingVehicle, ...]
    shadows: tuple[Shadow, ...]  # (lateral, s) polygons along the whole drive
    noise_base: int  # frame i's sensor noise seed is noise_base + i


def _sample_layout(rng: np.random.Generator, config: DriveConfig) -> _Layout:
    """Camera, 3-4 lines (dashed inside, solid outside), scenery, lighting, lane change, vehicles and shadows."""
    synth = _LAYOUT_CONFIG
    camera = sample_camera(rng)
    sampled_road, sampled_lines = sample_road(rng, synth)
    road, lines, ego_lane = _lane_layout(rng, sampled_road, sampled_lines)
    target = 1 - ego_lane
    start = SceneParams(
        camera=camera,
        road=road,
        lines=lines,
        scenery=sample_scenery(rng, synth),
        lighting=sample_visible_lighting(rng, synth, road, lines),
        texture_seed=int(rng.integers(2**63 - 1)),
    )
    drive_length = config.speed * config.seconds
    return _Layout(
        start=start,
        shift=(target - ego_lane) * road.lane_width,
        vehicles=_sample_vehicles(rng, start, (ego_lane, target), config),
        shadows=_sample_shadows(rng, road, drive_length) if config.shadows else (),
        noise_base=int(rng.integers(2**62)),
    )


def _lane_layout(
    rng: np.random.Generator, road: Road, lines: tuple[LaneLine, ...]
) -> tuple[Road, tuple[LaneLine, ...], int]:
    """Lines (solid outside, dashed inside, one paint length) around the ego lane; returns its index too.

    The car drives in one of the two left lanes: with the two far lines of a three-lane road on its left in the
    right bend, the built-in model often splits them into extra lanes (tuSimple FP ~0.1 over such a drive).
    """
    n = len(lines)
    ego_lane = int(rng.integers(0, 2))  # between lines ego_lane and ego_lane + 1
    in_lane = rng.uniform(-0.12, 0.12) * road.lane_width  # camera right of the lane centre
    offsets = [(j - ego_lane - 0.5) * road.lane_width - in_lane for j in range(n)]
    reach = rng.uniform(70.0, 110.0)
    lines = tuple(
        replace(line, offset=offset, dashed=0 < j < n - 1, max_distance=reach)
        for j, (line, offset) in enumerate(zip(lines, offsets))
    )
    road = replace(
        road,
        heading=0.0,
        curvature=0.0,
        edge_left=offsets[0] - rng.uniform(0.5, 2.5),
        edge_right=offsets[-1] + rng.uniform(0.5, 2.5),
        length=1e4,  # no crest: it would have to travel with the car
    )
    return road, lines, ego_lane


def _sample_vehicles(
    rng: np.random.Generator, start: SceneParams, ego_lanes: tuple[int, int], config: DriveConfig
) -> tuple[_MovingVehicle, ...]:
    """Up to config.max_vehicles vehicles 30-60 m ahead, one per lane; in the car's own two lanes they pull away.

    Elsewhere they may be slower than the car, but no nearer than MIN_VEHICLE_GAP within a 10 s drive.
    """
    if config.max_vehicles == 0:
        return ()
    lines = start.lines
    centres = [(a.offset + b.offset) / 2 for a, b in zip(lines, lines[1:])]
    placed: list[_MovingVehicle] = []
    for _ in range(int(rng.integers(1, config.max_vehicles + 1))):
        lane = int(rng.integers(len(centres)))
        ours = lane in ego_lanes
        truck = rng.random() < 0.25
        vehicle = Vehicle(
            lateral=centres[lane] + rng.normal(0, 0.2),
            distance=rng.uniform(30, 60),
            width=rng.uniform(2.3, 2.55) if truck else rng.uniform(1.65, 1.95),
            height=rng.uniform(3.0, 4.0) if truck else rng.uniform(1.35, 1.9),
            length=rng.uniform(9, 16) if truck else rng.uniform(4.0, 5.0),
            body_bgr=vehicle_color(rng, truck),
            truck=bool(truck),
        )
        speed = rng.uniform(1.0, 4.0) if ours else rng.uniform(-1.5, 3.0)
        clash = any(abs(p.vehicle.lateral - vehicle.lateral) < 2.5 for p in placed)  # one vehicle per lane
        if not clash:
            placed.append(_MovingVehicle(vehicle, float(speed)))
    return tuple(placed)


def _sample_shadows(rng: np.random.Generator, road: Road, drive_length: float) -> tuple[Shadow, ...]:
    """Stretches of roadside trees and one overpass, along the whole road the drive sees."""
    end = drive_length + 120.0  # the last frame still sees this far
    strength = rng.uniform(0.3, 0.6)
    s0 = rng.uniform(0.3, 0.8) * drive_length + 30.0
    depth = rng.uniform(5.0, 12.0)
    band = ((-60.0, s0), (60.0, s0), (60.0, s0 + depth), (-60.0, s0 + depth))
    shadows = [Shadow(band, strength, rng.uniform(2, 6))]
    woods_start = rng.uniform(0, 40)
    while woods_start < end:
        woods_end = woods_start + rng.uniform(30, 80)
        for s in np.arange(woods_start, min(woods_end, end), rng.uniform(6, 12)):
            side = road.edge_left if rng.random() < 0.5 else road.edge_right
            centre = side + rng.normal(0, 2.0)
            rx, rs = rng.uniform(1.0, 4.0), rng.uniform(1.5, 6.0)
            angles = np.sort(rng.uniform(0, 2 * np.pi, 11))
            radii = rng.uniform(0.6, 1.0, 11)
            poly = tuple(
                (float(centre + rx * r * math.cos(a)), float(s + rng.uniform(-2, 2) + rs * r * math.sin(a)))
                for a, r in zip(angles, radii)
            )
            shadows.append(Shadow(poly, strength * rng.uniform(0.8, 1.0), rng.uniform(3, 12)))
        woods_start = woods_end + rng.uniform(30, 90)
    return tuple(shadows)


# --------------------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------------------


def _frame_scene(
    layout: _Layout, config: DriveConfig, index: int, lateral: float, slope: float, curvature: float
) -> SceneParams:
    """The scene of frame `index`: the layout seen from the car at s = index * step, lateral offset `lateral`."""
    start = layout.start
    s = index * config.step
    t = index / config.fps
    road = replace(
        start.road,
        heading=-slope,
        curvature=curvature,
        edge_left=start.road.edge_left - lateral,
        edge_right=start.road.edge_right - lateral,
    )
    lines = tuple(replace(line, offset=line.offset - lateral) for line in start.lines)
    vehicles = []
    for moving in layout.vehicles:
        distance = moving.vehicle.distance + moving.speed * t
        if MIN_VEHICLE_GAP <= distance <= MAX_VEHICLE_DISTANCE:
            vehicles.append(replace(moving.vehicle, lateral=moving.vehicle.lateral - lateral, distance=distance))
    shadows = tuple(
        replace(shadow, polygon=tuple((x - lateral, y) for x, y in shadow.polygon))
        for shadow in layout.shadows
        if max(y for _, y in shadow.polygon) > s and min(y for _, y in shadow.polygon) < s + SHADOW_RANGE
    )
    return replace(
        start,
        road=road,
        lines=lines,
        vehicles=tuple(sorted(vehicles, key=lambda v: -v.distance)),  # far to near = drawing order
        shadows=shadows,
        distance_travelled=s,
        noise_seed=layout.noise_base + index,
    )


def _frames(layout: _Layout, config: DriveConfig) -> list[SceneParams]:
    """Every frame of the drive."""
    s = np.arange(config.frames) * config.step
    lateral, slope = ego_lateral(s, layout.shift, config)
    curvature = view_curvature(s, config)
    return [
        _frame_scene(layout, config, i, float(lateral[i]), float(slope[i]), float(curvature[i]))
        for i in range(config.frames)
    ]


def _all_lines_labelled(scenes: Sequence[SceneParams], min_points: int) -> bool:
    """Whether every line shows at least `min_points` label rows in every frame."""
    return all(
        sum(x != ABSENT for x in lane) >= min_points for params in scenes for lane in lane_labels(params)
    )


def _check_seed(seed: int) -> None:
    """ValueError unless seed is a non-negative integer."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def drive_scenes(seed: int, config: DriveConfig = DriveConfig()) -> list[SceneParams]:
    """One SceneParams per frame (round(seconds * fps) frames) of one continuous drive; deterministic in seed."""
    _check_seed(seed)
    rng = np.random.default_rng([int(seed), _STREAM])
    for _ in range(100):
        scenes = _frames(_sample_layout(rng, config), config)
        if _all_lines_labelled(scenes, _LAYOUT_CONFIG.min_label_points):
            return scenes
    raise RuntimeError("could not lay out a drive whose lines stay visible")  # pragma: no cover


def _render_in_order(
    scenes: Sequence[SceneParams], workers: int
) -> Iterator[tuple[int, np.ndarray, list[list[int]]]]:
    """(index, image, lanes) in frame order; at most 4 frames per worker wait in memory."""
    if workers == 1:
        for index, scene in enumerate(scenes):
            yield (index, *render_scene(scene))
        return
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=init_worker) as pool:
        pending: deque[Future] = deque()
        for index, scene in enumerate(scenes):
            pending.append(pool.submit(render_scene, scene))
            if len(pending) >= 4 * workers:
                yield (index - len(pending) + 1, *pending.popleft().result())
        first = len(scenes) - len(pending)
        for offset, future in enumerate(pending):
            yield (first + offset, *future.result())


def render_drive(
    seed: int, config: DriveConfig = DriveConfig(), workers: int = 1
) -> Iterator[tuple[int, np.ndarray, list[list[int]]]]:
    """(frame index, BGR uint8 [720, 1280, 3], tuSimple lanes at H_SAMPLES) in frame order.

    Lanes keep their order and count (one per painted line, left to right at the start) in every frame.
    workers > 1 renders in spawn-started processes; arguments are checked before the first frame is asked for.
    """
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    scenes = drive_scenes(seed, config)
    return _render_in_order(scenes, int(min(workers, len(scenes))))


# --------------------------------------------------------------------------------------------------
# Scoring a detector on the drive (demo figures, tests)
# --------------------------------------------------------------------------------------------------


def score_drive(
    detector: LaneDetector, seed: int = DEFAULT_SEED, config: DriveConfig = DriveConfig(), every: int = 1,
    batch_size: int = 8,
) -> TuSimpleScore:
    """tuSimple score (run time ignored) of a detector on every `every`-th frame of the drive."""
    if isinstance(every, bool) or not isinstance(every, numbers.Integral) or every < 1:
        raise ValueError(f"every must be a positive integer, got {every!r}")
    from .evaluate import without_run_time
    from .metrics import score_records
    from .predict import to_record
    from .tusimple import LaneRecord

    scenes = drive_scenes(seed, config)[::every]
    preds, gts = [], []
    for start in range(0, len(scenes), batch_size):
        rendered = [render_scene(scene) for scene in scenes[start : start + batch_size]]
        detections = detector([np.ascontiguousarray(image[:, :, ::-1]) for image, _ in rendered])
        for k, ((_, lanes), detection) in enumerate(zip(rendered, detections)):
            name = f"drive/{(start + k) * every:06d}.jpg"
            preds.append(to_record(name, detection, detector.prep))
            gts.append(LaneRecord(name, H_SAMPLES, tuple(tuple(lane) for lane in lanes)))
    return score_records(without_run_time(preds), gts)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: time the drive's scenes and rendering, and score the built-in model on it."""
    parser = argparse.ArgumentParser(prog="python -m lane_seg_core.drive", description=main.__doc__)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--every", type=int, default=1, help="score every N-th frame")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--checkpoint", help="default: the built-in model")
    args = parser.parse_args(argv)
    from .builtin import BUILTIN_CHECKPOINT
    from .inference import LaneDetector

    start = time.perf_counter()
    scenes = drive_scenes(args.seed)
    scenes_s = time.perf_counter() - start
    sample = scenes[:: max(1, len(scenes) // 30)]
    start = time.perf_counter()
    for scene in sample:
        render_scene(scene)
    render_ms = (time.perf_counter() - start) / len(sample) * 1e3
    print(f"drive_scenes: {len(scenes)} frames in {scenes_s * 1e3:.0f} ms; render_scene: {render_ms:.1f} ms/frame")
    detector = LaneDetector.from_checkpoint(args.checkpoint or BUILTIN_CHECKPOINT, device=args.device)
    score = score_drive(detector, args.seed, every=args.every)
    print(f"seed {args.seed}, every {args.every}: {score.summary()} frames={score.frames}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
