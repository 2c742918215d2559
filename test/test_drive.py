"""Tests for lane_seg_core.drive: one continuous synthetic drive with bends, a lane change and moving dashes."""

from __future__ import annotations

import math
from dataclasses import replace
from itertools import islice

import numpy as np
import pytest

from lane_seg_core.drive import (
    DEFAULT_SEED,
    DriveConfig,
    drive_config,
    drive_scenes,
    lane_change_distance,
    render_drive,
    score_drive,
)
from lane_seg_core.synth import ABSENT, IMAGE_SIZE, SceneParams, lane_labels, painted_intervals, render_scene
from lane_seg_core.tusimple import H_SAMPLES

CONFIG = DriveConfig()
BOTTOM = -1  # index of the lowest label row (710), where the car is


@pytest.fixture(scope="module")
def scenes() -> list[SceneParams]:
    return drive_scenes(DEFAULT_SEED)


@pytest.fixture(scope="module")
def labels(scenes: list[SceneParams]) -> np.ndarray:
    """[frames, lanes, rows] tuSimple x, ABSENT where a line is not seen."""
    return np.array([lane_labels(params) for params in scenes])


def ego_pair(labels: np.ndarray, frame: int, cx: float) -> tuple[int, int]:
    """The lines just left and just right of the image centre, at the lowest label row that shows both."""
    for row in range(len(H_SAMPLES) - 1, -1, -1):
        x = labels[frame, :, row]
        left = [j for j in range(len(x)) if x[j] != ABSENT and x[j] < cx]
        right = [j for j in range(len(x)) if x[j] != ABSENT and x[j] >= cx]
        if left and right:
            return max(left, key=lambda j: x[j]), min(right, key=lambda j: x[j])
    raise AssertionError(f"frame {frame} has no lines on both sides of the centre")


def test_frame_count_and_determinism(scenes: list[SceneParams]) -> None:
    assert len(scenes) == 300 == round(CONFIG.seconds * CONFIG.fps)
    assert len(drive_scenes(5, DriveConfig(seconds=2.5, fps=12.0, lane_change_seconds=2.0))) == 30
    assert drive_scenes(DEFAULT_SEED) == scenes
    other = drive_scenes(DEFAULT_SEED + 1)
    assert other[0].camera != scenes[0].camera and other[0].lines != scenes[0].lines


def test_one_camera_one_look_and_noise_per_frame(scenes: list[SceneParams]) -> None:
    first = scenes[0]
    for params in scenes:
        assert (params.camera, params.scenery, params.lighting, params.texture_seed) == (
            first.camera, first.scenery, first.lighting, first.texture_seed)
    assert len({params.noise_seed for params in scenes}) == len(scenes)
    assert 3 <= len(first.lines) <= 4
    assert [line.dashed for line in first.lines] == [0 < j < len(first.lines) - 1 for j in range(len(first.lines))]


def test_every_line_is_labelled_in_every_frame(labels: np.ndarray) -> None:
    assert ((labels != ABSENT).sum(axis=2) >= 5).all()


def test_labels_move_continuously(scenes: list[SceneParams], labels: np.ndarray) -> None:
    # A lane point moves between frames by the car's yaw change (at most ~0.005 rad per frame while steering or
    # entering a bend: f * 0.005 <= 6 px, plus 1 px rounding and 2 px for the far curve) plus its lateral motion
    # seen at depth z (at most 0.1 m per frame: 3 m/s sideways, f * 0.1 / z px; ~30 px at the bottom row).
    camera = scenes[0].camera
    rows = np.asarray(H_SAMPLES, float)
    z = camera.depth_at_row(np.maximum(rows, camera.horizon + 1))
    bound = 9 + camera.focal * 0.1 / z
    both = (labels[1:] != ABSENT) & (labels[:-1] != ABSENT)
    step = np.where(both, np.abs(labels[1:] - labels[:-1]), 0)
    assert both.sum() > 0.5 * labels.size
    assert (step <= bound).all(), f"largest step over the bound: {(step - bound).max():.1f} px"
    assert step[:, :, z > 30].max() <= 9  # far away a few px only


def test_dashes_advance_towards_the_camera(scenes: list[SceneParams]) -> None:
    step = CONFIG.speed / CONFIG.fps
    dashed = [j for j, line in enumerate(scenes[0].lines) if line.dashed]
    assert dashed
    for a, b in zip(scenes, scenes[1:]):
        assert b.distance_travelled - a.distance_travelled == pytest.approx(step)
        for j in dashed:
            assert b.lines[j].dash_phase == a.lines[j].dash_phase
            before = painted_intervals(a.lines[j], 5.0, 80.0, a.distance_travelled)
            after = painted_intervals(b.lines[j], 5.0, 80.0, b.distance_travelled)
            ends = [z1 - step for _, z1 in before if 5.0 + step < z1 < 80.0]  # whole dash ends, still in view
            assert ends
            assert all(any(abs(z1 - e) < 1e-6 for _, z1 in after) for e in ends)


def test_the_car_changes_lane(scenes: list[SceneParams], labels: np.ndarray) -> None:
    cx = scenes[0].camera.cx
    start, end = ego_pair(labels, 0, cx), ego_pair(labels, len(scenes) - 1, cx)
    assert start != end and abs(start[0] - end[0]) == 1
    crossing = start[1] if end[0] > start[0] else start[0]  # the line the car drives over
    x = labels[:, crossing, BOTTOM].astype(float)
    seen = x != ABSENT
    assert np.sign(x[seen][0] - cx) != np.sign(x[seen][-1] - cx)
    assert np.nanmin(np.abs(np.where(seen, x, np.nan) - cx)) < 15  # it passes under the camera


def test_heading_follows_the_steering(scenes: list[SceneParams]) -> None:
    step = CONFIG.speed / CONFIG.fps
    offsets = np.array([params.lines[0].offset for params in scenes])
    headings = np.array([params.road.heading for params in scenes])
    slope = -np.gradient(offsets, step)  # the car's lateral velocity over its speed
    np.testing.assert_allclose(headings, -slope, atol=2e-3)
    steering = np.abs(headings) > 1e-3
    seconds = steering.sum() / CONFIG.fps
    assert 2.0 <= seconds <= 3.5 and np.abs(headings).max() < 0.2
    assert not steering[:60].any() and not steering[-60:].any()


def test_bends_right_then_left(scenes: list[SceneParams]) -> None:
    curvature = np.array([params.road.curvature for params in scenes])
    assert np.abs(curvature).max() <= 1 / 300
    assert curvature.max() > 0.5 / CONFIG.bend_radius and curvature.min() < -0.5 / CONFIG.bend_radius
    assert curvature.argmax() < curvature.argmin()  # right bend first
    assert np.abs(np.diff(curvature)).max() < 1e-4  # smooth: no kinks between frames


def test_shadows_are_fixed_to_the_road(scenes: list[SceneParams]) -> None:
    assert sum(bool(params.shadows) for params in scenes) == len(scenes)
    step = CONFIG.speed / CONFIG.fps
    moved = 0
    for a, b in zip(scenes, scenes[1:]):
        shift = b.lines[0].offset - a.lines[0].offset  # the car's lateral motion, mirrored
        along = {tuple(y for _, y in s.polygon): s for s in a.shadows}
        for shadow in b.shadows:
            key = tuple(y for _, y in shadow.polygon)
            if key in along:  # the same shadow: same road position, laterally relative to the car
                old = along[key]
                np.testing.assert_allclose(
                    [x for x, _ in shadow.polygon], [x + shift for x, _ in old.polygon], atol=1e-9)
                near_a, near_b = min(key) - a.distance_travelled, min(key) - b.distance_travelled
                assert near_b == pytest.approx(near_a - step)  # it slides towards the camera
                moved += 1
    assert moved > len(scenes)


def test_shadows_show_in_the_image(scenes: list[SceneParams]) -> None:
    params = scenes[len(scenes) // 2]
    lit, _ = render_scene(replace(params, shadows=()))
    shaded, _ = render_scene(params)
    darker = lit.astype(int).sum(axis=2) - shaded.astype(int).sum(axis=2) > 60
    assert darker[int(params.camera.horizon) + 10 :].mean() > 0.005


def test_vehicles_keep_their_distance(scenes: list[SceneParams]) -> None:
    seen = [v for params in scenes for v in params.vehicles]
    assert seen and min(v.distance for v in seen) >= 10.0
    for a, b in zip(scenes, scenes[1:]):
        if len(a.vehicles) == len(b.vehicles):
            shift = b.lines[0].offset - a.lines[0].offset
            for va, vb in zip(a.vehicles, b.vehicles):
                assert vb.lateral == pytest.approx(va.lateral + shift)
                assert abs(vb.distance - va.distance) < 5.0 / CONFIG.fps


def test_sensor_noise_changes_but_the_scene_stays(scenes: list[SceneParams]) -> None:
    first, _ = render_scene(scenes[0])
    again, _ = render_scene(scenes[0])
    other_noise, _ = render_scene(replace(scenes[0], noise_seed=scenes[1].noise_seed))
    assert np.array_equal(first, again)
    diff = np.abs(first.astype(int) - other_noise.astype(int))
    assert diff.mean() > 0.3 and np.median(diff) <= 10


def test_render_drive_yields_frames_in_order_with_or_without_workers(scenes: list[SceneParams]) -> None:
    serial = list(islice(render_drive(DEFAULT_SEED), 5))
    pooled = list(islice(render_drive(DEFAULT_SEED, workers=2), 5))
    assert [index for index, _, _ in serial] == [index for index, _, _ in pooled] == list(range(5))
    for (index, image, lanes), (_, image2, lanes2) in zip(serial, pooled):
        assert image.shape == (IMAGE_SIZE[1], IMAGE_SIZE[0], 3) and image.dtype == np.uint8
        assert np.array_equal(image, image2)
        assert lanes == lanes2 == lane_labels(scenes[index])


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"seconds": 0}, "seconds"),
        ({"seconds": math.nan}, "seconds"),
        ({"fps": 0}, "fps"),
        ({"speed": -1}, "speed"),
        ({"bend_radius": 100}, "bend_radius"),
        ({"lane_change_seconds": 20}, "lane_change_seconds"),
        ({"lane_change_start": 8.0}, "lane_change_start"),
        ({"speed": 5.0}, "lane_change_seconds"),  # a lane change over 15 m would need a 0.4 rad swerve
        ({"lane_change": "yes"}, "lane_change"),
        ({"max_vehicles": 3}, "max_vehicles"),
        ({"shadows": 1}, "shadows"),
        ({"seconds": 0.1, "fps": 10, "lane_change": False}, "seconds"),  # a single frame
    ],
)
def test_invalid_config_names_the_field(changes: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"DriveConfig.{field}"):
        DriveConfig(**changes)


def test_invalid_seed_and_workers() -> None:
    with pytest.raises(ValueError, match="seed"):
        drive_scenes(-1)
    with pytest.raises(ValueError, match="workers"):
        render_drive(DEFAULT_SEED, workers=0)


def test_a_drive_without_lane_change_keeps_its_lane() -> None:
    config = DriveConfig(seconds=2.0, lane_change=False, max_vehicles=0, shadows=False)
    scenes = drive_scenes(DEFAULT_SEED, config)
    assert len(scenes) == 60
    assert {params.lines[0].offset for params in scenes} == {scenes[0].lines[0].offset}
    assert all(not params.vehicles and not params.shadows for params in scenes)


@pytest.mark.slow
def test_builtin_model_scores_the_drive() -> None:
    from lane_seg_core.cli import BUILTIN_CHECKPOINT
    from lane_seg_core.inference import LaneDetector

    detector = LaneDetector.from_checkpoint(BUILTIN_CHECKPOINT, device="cpu")
    score = score_drive(detector, DEFAULT_SEED, every=3)
    assert score.frames == 100
    assert score.accuracy >= 0.90 and score.fp <= 0.10 and score.fn <= 0.10, score


@pytest.mark.parametrize("seconds", [1.0, 2.0, 4.0, 10.0, 30.0])
def test_drive_config_fits_a_lane_change_into_any_length(seconds):
    config = drive_config(seconds)
    assert config.seconds == seconds
    assert config.lane_change and 0 <= config.lane_change_at <= config.lane_change_at + config.lane_change_seconds <= seconds
    assert config.speed * config.lane_change_seconds >= lane_change_distance()
    if seconds == 10.0:
        assert config == DriveConfig()
