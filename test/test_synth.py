"""Tests for lane_seg_core.synth: tuSimple-format synthetic road scenes."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from lane_seg_core.synth import (
    ABSENT,
    H_SAMPLES,
    IMAGE_SIZE,
    generate_dataset,
    lane_labels,
    painted_intervals,
    render_scene,
    sample_frame,
    sample_scene,
    visible_end,
)

SEED = 3
COUNT = 6
RAW_FILE_RE = re.compile(r"clips/[^/]+/[^/]+/20\.jpg")


def read_labels(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("synth") / "out", COUNT, SEED)


def test_label_file_is_tusimple_json_lines(dataset: Path) -> None:
    assert dataset.name == "label_data_synth.json"
    lines = dataset.read_text().splitlines()
    assert len(lines) == COUNT
    for line in lines:
        record = json.loads(line)  # one object per line, no surrounding list
        assert list(record) == ["lanes", "h_samples", "raw_file"]
        assert record["h_samples"] == list(range(160, 720, 10)) == list(H_SAMPLES)
        assert len(record["h_samples"]) == 56
        assert 2 <= len(record["lanes"]) <= 5
        for lane in record["lanes"]:
            assert len(lane) == 56
            assert all(type(x) is int and (x == ABSENT or 0 <= x <= 1279) for x in lane)
            assert sum(x != ABSENT for x in lane) >= 5
        assert RAW_FILE_RE.fullmatch(record["raw_file"])


def test_raw_files_are_1280x720_jpegs(dataset: Path) -> None:
    records = read_labels(dataset)
    assert len({r["raw_file"] for r in records}) == COUNT
    for record in records:
        path = dataset.parent / record["raw_file"]
        assert path.read_bytes()[:3] == b"\xff\xd8\xff"
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert image.shape == (IMAGE_SIZE[1], IMAGE_SIZE[0], 3)
        assert image.std() > 10  # a scene, not a blank frame


def test_same_seed_same_bytes_and_frames_independent_of_count(dataset: Path, tmp_path: Path) -> None:
    again = generate_dataset(tmp_path / "again", 3, SEED)
    first, second = read_labels(dataset), read_labels(again)
    assert second == first[:3]
    for record in second:
        assert (again.parent / record["raw_file"]).read_bytes() == (dataset.parent / record["raw_file"]).read_bytes()


def test_worker_pool_writes_the_same_dataset(dataset: Path, tmp_path: Path) -> None:
    pooled = generate_dataset(tmp_path / "pooled", 4, SEED, workers=2)
    assert read_labels(pooled) == read_labels(dataset)[:4]
    for record in read_labels(pooled):
        assert (pooled.parent / record["raw_file"]).read_bytes() == (dataset.parent / record["raw_file"]).read_bytes()


def test_different_seeds_differ(dataset: Path, tmp_path: Path) -> None:
    other = generate_dataset(tmp_path / "other", 2, SEED + 1)
    mine, theirs = read_labels(dataset)[:2], read_labels(other)
    assert [r["lanes"] for r in mine] != [r["lanes"] for r in theirs]
    for a, b in zip(mine, theirs):
        assert (dataset.parent / a["raw_file"]).read_bytes() != (other.parent / b["raw_file"]).read_bytes()


def test_name_selects_label_file_and_clip_dirs(tmp_path: Path) -> None:
    path = generate_dataset(tmp_path, 1, SEED, name="val")
    assert path == tmp_path / "label_data_val.json"
    raw_file = read_labels(path)[0]["raw_file"]
    assert "val" in raw_file.split("/")[1] and (tmp_path / raw_file).is_file()


def test_refuses_bad_count(tmp_path: Path) -> None:
    for count in (0, -3):
        with pytest.raises(ValueError, match="count"):
            generate_dataset(tmp_path, count, SEED)
    assert not any(tmp_path.iterdir())


def test_refuses_existing_label_file(tmp_path: Path) -> None:
    existing = tmp_path / "label_data_synth.json"
    existing.write_text("precious\n")
    with pytest.raises(ValueError, match="out_dir"):
        generate_dataset(tmp_path, 2, SEED)
    assert existing.read_text() == "precious\n"
    assert not (tmp_path / "clips").exists()


def test_refuses_bad_name_and_workers(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="name"):
        generate_dataset(tmp_path, 1, SEED, name="../evil")
    with pytest.raises(ValueError, match="workers"):
        generate_dataset(tmp_path, 1, SEED, workers=0)


def test_scene_sampling_is_varied_and_lanes_are_ordered() -> None:
    scenes = [sample_frame(11, i) for i in range(300)]
    counts = {len(s.lines) for s in scenes}
    assert counts == {2, 3, 4, 5}
    with_vehicles = sum(bool(s.vehicles) for s in scenes) / len(scenes)
    with_shadows = sum(bool(s.shadows) for s in scenes) / len(scenes)
    assert 0.15 < with_vehicles < 0.45 and 0.15 < with_shadows < 0.45
    curvature = np.array([abs(s.road.curvature) for s in scenes])
    assert (curvature < 3e-4).mean() > 0.2 and (curvature > 1.5e-3).mean() > 0.2  # straight and clearly curved
    horizons = np.array([s.camera.horizon for s in scenes])
    assert horizons.min() > 225 and horizons.max() < 305 and horizons.std() > 10
    assert any(line.dashed for s in scenes for line in s.lines)
    assert any(not line.dashed for s in scenes for line in s.lines)
    for scene in scenes:
        lanes = np.array(lane_labels(scene))
        for left, right in zip(lanes, lanes[1:]):
            both = (left != ABSENT) & (right != ABSENT)
            assert (left[both] < right[both]).all()  # left to right on every shared row, so also at the bottom


def test_same_rng_state_same_scene() -> None:
    a = sample_scene(np.random.default_rng([5, 9]))
    b = sample_scene(np.random.default_rng([5, 9]))
    assert a == b and sample_frame(5, 9) == a
    assert sample_frame(5, 10) != a


def clean(scene):
    """The scene with plain solid paint and no occluders, shadows, noise or blur (global lighting kept)."""
    return replace(
        scene,
        lines=tuple(replace(line, dashed=False) for line in scene.lines),
        road=replace(scene.road, marking_wear=0.0, tyre_tracks=0.0),
        vehicles=(),
        shadows=(),
        lighting=replace(scene.lighting, noise_sigma=0.0, blur_sigma=0.0),
    )


def crossing(row: np.ndarray, start: int, road: float, step: int) -> float:
    """Sub-pixel position where `row` falls halfway from row[start] to `road`, walking from start by step."""
    level = (row[start] + road) / 2
    i = start
    while row[i + step] >= level:
        i += step
    return i + step * (row[i] - level) / (row[i] - row[i + step])


def test_labels_sit_on_the_centre_of_painted_markings() -> None:
    errors = []
    for index in range(12):
        scene = clean(sample_frame(21, index))
        image, lanes = render_scene(scene)
        assert image.shape == (720, 1280, 3) and image.dtype == np.uint8
        assert lanes == lane_labels(scene)
        luma = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(float)
        cam = scene.camera
        for line, lane in zip(scene.lines, lanes):
            for k in range(1, len(H_SAMPLES) - 1):
                x, y, before, after = lane[k], H_SAMPLES[k], lane[k - 1], lane[k + 1]
                width_px = line.width * cam.focal / cam.depth_at_row(y)
                if ABSENT in (x, before, after) or width_px < 3 or abs(after - before) > 40:
                    continue  # only steep, wide enough stretches: a flat line smears along the row
                side = int(round(width_px)) + 4
                if not side <= x <= 1279 - side:
                    continue
                row = luma[y, x - side : x + side + 1]
                road_left, road_right = np.median(row[:3]), np.median(row[-3:])
                assert row[side] > max(road_left, road_right) + 15, (index, x, y)  # paint at the label
                centre = x - side + (crossing(row, side, road_left, -1) + crossing(row, side, road_right, 1)) / 2
                assert abs(centre - x) <= 1.5, (index, x, y, centre)  # rounding 0.5 + anti-aliasing
                errors.append(centre - x)
    assert len(errors) > 100
    assert abs(np.mean(errors)) < 0.2  # no systematic (e.g. half-pixel) offset between paint and labels


def test_paint_and_label_end_together() -> None:
    scene = clean(sample_frame(21, 0))
    grid_row = max(y for y in H_SAMPLES if y < scene.camera.row_at_depth(40.0))
    end = scene.camera.depth_at_row(grid_row + 1.5)  # paint ends just below a label row
    scene = replace(scene, lines=(replace(scene.lines[0], max_distance=end),) + scene.lines[1:])
    image, lanes = render_scene(scene)
    without, _ = render_scene(replace(scene, lines=scene.lines[1:]))
    diff = np.abs(image.astype(int) - without.astype(int)).max(axis=2)
    top_painted = np.flatnonzero(diff.max(axis=1) > 3).min()
    top_labelled = min(y for x, y in zip(lanes[0], H_SAMPLES) if x != ABSENT)
    assert top_labelled == grid_row + 10  # the first label row below the end of the paint
    assert grid_row < top_painted <= grid_row + 2  # and the paint really ends there


def test_dashed_labels_end_at_the_end_of_a_dash() -> None:
    for index in range(100):
        scene = sample_frame(31, index)
        z_near = scene.camera.depth_at_row(722)
        for line in scene.lines:
            end = visible_end(line)
            assert line.max_distance - line.gap_length <= end <= line.max_distance
            pieces = painted_intervals(line, z_near, line.max_distance)
            assert pieces[-1][1] == pytest.approx(end)  # no paint beyond the label, no label beyond the paint


def test_dashes_move_with_distance_travelled() -> None:
    line = sample_frame(11, 1).lines[0]
    line = replace(line, dashed=True, dash_length=3.0, gap_length=7.0, dash_phase=1.0)
    here = painted_intervals(line, 5.0, 60.0)
    later = painted_intervals(line, 5.0, 60.0, distance_travelled=2.0)
    assert all(z1 - z0 <= 3.0 + 1e-9 for z0, z1 in here) and len(here) >= 5
    starts_here = [round(a, 6) for a, _ in here if 7.0 < a]
    starts_later = [round(a + 2.0, 6) for a, _ in later if 5.0 < a]
    assert starts_later == starts_here  # the whole pattern came 2 m closer
