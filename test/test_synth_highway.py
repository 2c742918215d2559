"""The highway world of lane_seg_core.synth: only lane markings are labelled, what hides a lane hides its label,
real layouts put the lanes where real lanes lie, and the basic world is unchanged by it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from lane_seg_core.cli import main as cli
from lane_seg_core.synth import (
    ABSENT,
    DEFAULT_CONFIG,
    H_SAMPLES,
    HIGHWAY_CONFIG,
    Barrier,
    generate_dataset,
    lane_labels,
    marking_polygons,
    render_scene,
    sample_frame,
)
from lane_seg_core.synth.camera import sample_hood
from lane_seg_core.synth.layout import sample_real_road
from lane_seg_core.synth.photometry import apply_optics
from lane_seg_core.synth.real_layouts import (
    NOMINAL_CX,
    NOMINAL_FOCAL,
    NOMINAL_HEIGHT,
    RealLayout,
    fit_layout,
    load_layouts,
)
from lane_seg_core.synth.roadside import barrier_mask
from lane_seg_core.synth.scene import LOW_RES

REAL_LABELS = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "tusimple-train-labels"


def labelled_points(lanes: list[list[int]]) -> list[tuple[int, int]]:
    return [(x, y) for lane in lanes for x, y in zip(lane, H_SAMPLES) if x != ABSENT]


def test_highway_frames_carry_barriers_decoys_vehicles_hoods_and_varied_cameras() -> None:
    scenes = [sample_frame(4, i, HIGHWAY_CONFIG) for i in range(60)]
    assert sum(bool(s.barriers) for s in scenes) >= 20
    assert sum(bool(s.decoys) for s in scenes) >= 20
    assert sum(len(s.vehicles) >= 2 for s in scenes) >= 15
    assert sum(s.hood is not None for s in scenes) >= 4
    assert sum(s.lighting.jpeg_quality < 80 for s in scenes) >= 10
    assert np.ptp([s.camera.focal for s in scenes]) > 400 and np.ptp([s.camera.height for s in scenes]) > 0.8
    assert sum(any(line.double_gap > 0 for line in s.lines) for s in scenes) >= 3
    basic = [sample_frame(4, i, DEFAULT_CONFIG) for i in range(60)]
    assert not any(s.barriers or s.decoys or s.strips or s.overpasses or s.hood for s in basic)


def test_lines_that_are_not_lanes_are_painted_but_never_labelled() -> None:
    scene = next(s for s in (sample_frame(5, i, HIGHWAY_CONFIG) for i in range(80)) if s.decoys and not s.barriers)
    image, lanes = render_scene(scene)
    bare, bare_lanes = render_scene(replace(scene, decoys=()))
    assert lanes == bare_lanes and len(lanes) == len(scene.lines)
    assert np.abs(image.astype(int) - bare.astype(int)).max() > 30  # the decoys are in the picture


def test_a_barrier_hides_the_label_of_what_it_hides() -> None:
    scene = replace(sample_frame(6, 0, DEFAULT_CONFIG), hood=None)
    right = scene.lines[-1].offset
    assert right > 1.0
    # a 3 m wall between the camera and the rightmost line hides that line (and whatever lies beyond it)
    wall = Barrier(lateral=right - 0.8, side=1, height=3.0, top_width=0.3, face_bgr=(0.0, 0.0, 255.0), jersey=False,
                   stain=0.0)
    walled = replace(scene, barriers=(wall,))
    open_lanes, walled_lanes = lane_labels(scene), lane_labels(walled)
    assert sum(x != ABSENT for x in walled_lanes[-1]) <= 0.2 * sum(x != ABSENT for x in open_lanes[-1])
    assert walled_lanes[:-1] == open_lanes[:-1]  # the lines left of the wall are untouched
    mask = barrier_mask(walled)
    assert all(mask[y // LOW_RES, x // LOW_RES] == 0 for x, y in labelled_points(walled_lanes))
    (image, _), (without, _) = render_scene(walled), render_scene(scene)
    hidden = [(x, y) for x, y in zip(open_lanes[-1], H_SAMPLES) if x != ABSENT and (x, y) not in
              labelled_points(walled_lanes)]
    change = [np.abs(image[y, x].astype(int) - without[y, x]).max() for x, y in hidden]
    assert len(hidden) >= 10 and np.median(change) > 20  # the wall is drawn where the labels were taken away


def test_the_hood_covers_the_image_bottom_and_the_labels_stop_above_it() -> None:
    base = sample_frame(8, 3, DEFAULT_CONFIG)
    hood = sample_hood(np.random.default_rng(1), base.camera)
    assert hood is not None
    scene = replace(base, hood=replace(hood, top=650.0, sag=30.0, bgr=(20.0, 20.0, 200.0)))
    image, lanes = render_scene(scene)
    assert all(y < scene.hood.top_row(np.array([x]), 1280)[0] for x, y in labelled_points(lanes))
    assert max(y for _, y in labelled_points(lane_labels(base))) > 650  # without the hood they went lower
    bottom = image[700:, 600:680].reshape(-1, 3).mean(axis=0)
    assert bottom[2] > 120 and bottom[0] < 90  # the (red) hood, not the road


def test_a_double_line_is_two_stripes_labelled_once_at_their_centre() -> None:
    scene = sample_frame(9, 0, DEFAULT_CONFIG)
    single = replace(scene.lines[0], dashed=False)
    double = replace(single, double_gap=0.4)
    assert len(marking_polygons(scene, double)) == 2 * len(marking_polygons(scene, single))
    assert lane_labels(replace(scene, lines=(double,) + scene.lines[1:]))[0] == \
        lane_labels(replace(scene, lines=(single,) + scene.lines[1:]))[0]


def project(layout: RealLayout, horizon: float = 240.0) -> dict:
    """The tuSimple label line of a layout seen through the nominal camera."""
    lanes = []
    for offset, end in zip(layout.offsets, layout.ends):
        xs = []
        for y in H_SAMPLES:
            dv = y - horizon
            z = NOMINAL_FOCAL * NOMINAL_HEIGHT / dv if dv > 0 else np.inf
            x = offset + layout.heading * z + 0.5 * layout.curvature * z * z
            u = NOMINAL_CX + NOMINAL_FOCAL * x / z if z <= end else -1
            xs.append(int(round(u)) if 0 <= u < 1280 else -2)
        lanes.append(xs)
    return {"lanes": lanes, "h_samples": list(H_SAMPLES), "raw_file": "clips/a/20.jpg"}


def test_a_layout_is_recovered_from_its_own_label_line() -> None:
    truth = RealLayout(offsets=(-5.4, -1.7, 1.9, 5.6), ends=(60.0, 80.0, 80.0, 50.0), heading=0.01,
                       curvature=1 / 900)
    fitted = fit_layout(project(truth))
    assert fitted is not None
    assert np.allclose(fitted.offsets, truth.offsets, atol=0.1)
    assert fitted.curvature == pytest.approx(truth.curvature, rel=0.25) and fitted.heading == pytest.approx(0.01, abs=0.005)
    assert fit_layout({"lanes": [project(truth)["lanes"][0]], "h_samples": list(H_SAMPLES)}) is None  # one lane


def test_real_roads_copy_a_layout_or_its_mirror_image(tmp_path: Path) -> None:
    truth = RealLayout(offsets=(-5.4, -1.7, 1.9), ends=(60.0, 80.0, 70.0), heading=0.0, curvature=1 / 900)
    source = tmp_path / "labels.json.lines"
    source.write_text(json.dumps(project(truth)) + "\n")
    layouts = load_layouts(str(source))
    offsets = set()
    for seed in range(10):
        road, lines = sample_real_road(np.random.default_rng(seed), HIGHWAY_CONFIG, layouts)
        got = tuple(round(line.offset, 1) for line in lines)
        assert got in {tuple(round(o, 1) for o in layouts[0].offsets),
                       tuple(round(-o, 1) for o in reversed(layouts[0].offsets))}
        assert road.curvature in (pytest.approx(layouts[0].curvature), pytest.approx(-layouts[0].curvature))
        offsets.add(got)
    assert len(offsets) == 2


def test_bad_layout_sources_are_named(tmp_path: Path, capsys) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_layouts(str(tmp_path / "nowhere"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(project(RealLayout((-1.8, 1.8), (50.0, 50.0), 0.0, 0.0))) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"bad\.json:2"):
        load_layouts(str(bad))
    code = cli(["synth", "--out", str(tmp_path / "out"), "--count", "2", "--world", "highway",
                "--layouts", str(tmp_path / "nowhere")])
    assert code != 0 and "nowhere" in capsys.readouterr().err and not (tmp_path / "out" / "clips").exists()


@pytest.mark.skipif(not REAL_LABELS.is_dir(), reason="needs ../shared/data/real/tusimple-train-labels")
def test_the_real_label_lines_give_thousands_of_plausible_layouts() -> None:
    layouts = load_layouts(str(REAL_LABELS))
    assert len(layouts) > 2500
    widths = np.array([layout.lane_width for layout in layouts])
    assert 3.2 < np.median(widths) < 3.9
    assert {len(layout.offsets) for layout in layouts} >= {3, 4, 5}


def test_optics_darken_corners_blur_and_glare() -> None:
    image = np.full((720, 1280, 3), 128, np.uint8)
    scene = sample_frame(1, 1, DEFAULT_CONFIG)
    vignetted = apply_optics(image.copy(), replace(scene.lighting, vignette=0.5))
    assert vignetted[5, 5].mean() < 100 and abs(int(vignetted[360, 640].mean()) - 128) <= 1
    glared = apply_optics(image.copy(), replace(scene.lighting, glare=0.6, glare_xy=(200.0, 100.0)))
    assert glared[100, 200].mean() > 200 and glared[100, 200].mean() > glared[600, 1100].mean() + 40
    stripes = np.zeros_like(image)
    stripes[::8] = 255
    blurred = apply_optics(stripes, replace(scene.lighting, motion_blur=8.0))
    assert blurred[:, 640].std() < 0.5 * stripes[:, 640].std()


def test_highway_datasets_are_reproducible_with_workers_and_use_each_frames_jpeg_quality(tmp_path: Path) -> None:
    one = generate_dataset(tmp_path / "a", 4, 3, config=HIGHWAY_CONFIG)
    two = generate_dataset(tmp_path / "b", 4, 3, workers=2, config=HIGHWAY_CONFIG)
    assert one.read_text() == two.read_text()
    for record in map(json.loads, one.read_text().splitlines()):
        a, b = (tmp_path / d / record["raw_file"] for d in ("a", "b"))
        assert a.read_bytes() == b.read_bytes()
    index = next(i for i in range(4) if sample_frame(3, i, HIGHWAY_CONFIG).lighting.jpeg_quality < 60)
    record = json.loads(one.read_text().splitlines()[index])
    image, _ = render_scene(sample_frame(3, index, HIGHWAY_CONFIG))
    written = cv2.imread(str(tmp_path / "a" / record["raw_file"]))
    reencoded = cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1], cv2.IMREAD_COLOR)
    assert np.abs(written.astype(int) - image).mean() > np.abs(reencoded.astype(int) - image).mean()
