"""The detector: RGB images of any size in, ordered lanes, instance masks, ground points and timings out."""

import numpy as np
import pytest
import torch

from lane_seg_core.builtin import BUILTIN_CHECKPOINT
from lane_seg_core.checkpoint import load_checkpoint
from lane_seg_core.evaluate import read_rgb
from lane_seg_core.ground import GroundPlane
from lane_seg_core.inference import LaneDetector
from lane_seg_core.postprocess import PostprocessConfig, extract_lanes, instance_mask
from lane_seg_core.preprocess import Preprocessing
from lane_seg_core.synth import generate_dataset

PREP = Preprocessing(input_width=256, input_height=128, crop_top=0.2)
GEOMETRY = PREP.geometry(1280, 720)
STAGES = {"preprocess", "forward", "cluster", "fit", "mask", "total"}


def painted_outputs(lanes, dashes=None, blur_rows=0):
    """lane_prob [128,256] and embedding [5,128,256] for lanes given as (bottom col, top col, top row, code).

    Each lane runs straight from (bottom col, row 127) to (top col, top row), 3 px wide; its pixels embed at
    3 * code. `dashes` = (on, off) rows paints it dashed; `blur_rows` rows at the top of each lane embed
    halfway to the next lane's code (the ambiguous pixels where lanes touch).
    """
    prob = torch.zeros(128, 256)
    embedding = torch.full((5, 128, 256), -9.0)
    for i, (bottom, top, top_row, code) in enumerate(lanes):
        for row in range(top_row, 128):
            if dashes and (row // dashes[0]) % 2 and row < 120:
                continue
            col = round(top + (bottom - top) * (row - top_row) / (127 - top_row))
            value = torch.tensor(code, dtype=torch.float32) * 3.0
            if row < top_row + blur_rows and i + 1 < len(lanes):
                value = (value + torch.tensor(lanes[i + 1][3], dtype=torch.float32) * 3.0) / 2
            prob[row, max(col - 1, 0):col + 2] = 1.0
            embedding[:, row, max(col - 1, 0):col + 2] = value[:, None]
    return prob, embedding


def code(k):
    return [float(k == j) for j in range(5)]


def test_no_lanes_is_an_empty_result_with_an_empty_mask():
    prob, embedding = torch.zeros(128, 256), torch.zeros(5, 128, 256)
    result = extract_lanes(prob, embedding, GEOMETRY, (1280, 720), PostprocessConfig())
    assert result.lanes == [] and instance_mask(result.label_map, GEOMETRY, (1280, 720)).max() == 0


def test_one_lane_right_of_centre_is_position_one():
    prob, embedding = painted_outputs([(170, 140, 20, code(0))])
    [lane] = extract_lanes(prob, embedding, GEOMETRY, (1280, 720), PostprocessConfig(min_pixels=10)).lanes
    assert lane.id == 1 and lane.position == 1 and 0 < lane.confidence <= 1
    assert lane.points.dtype == np.float32 and lane.points.shape[1] == 2
    assert np.all(np.diff(lane.points[:, 1]) < 0)  # bottom of the image first, then upwards


def test_six_lanes_are_ordered_left_to_right_with_ego_positions():
    bottoms = [10, 60, 110, 150, 200, 245]
    lanes = [(b, 118 + 4 * i, 30, [3.0 * (i % 2), 3.0 * (i // 2), 0, 0, 0]) for i, b in enumerate(bottoms)]
    prob, embedding = painted_outputs([(b, t, r, c) for b, t, r, c in lanes])
    result = extract_lanes(prob, embedding, GEOMETRY, (1280, 720), PostprocessConfig(min_pixels=10, max_lanes=6))
    assert [lane.id for lane in result.lanes] == [1, 2, 3, 4, 5, 6]
    assert [lane.position for lane in result.lanes] == [-3, -2, -1, 1, 2, 3]
    bottom_x = [lane.points[0, 0] for lane in result.lanes]
    assert bottom_x == sorted(bottom_x)
    expected = GEOMETRY.to_image(np.array([[b, 127.0] for b in bottoms]))[:, 0]
    assert np.allclose(bottom_x, expected, atol=8)


def test_lanes_that_touch_at_the_horizon_stay_two_lanes():
    """Two lanes meeting at one point far away, with blurred embeddings where they touch."""
    prob, embedding = painted_outputs([(80, 128, 10, code(0)), (176, 128, 10, code(1))], blur_rows=12)
    lanes = extract_lanes(prob, embedding, GEOMETRY, (1280, 720), PostprocessConfig(min_pixels=10)).lanes
    assert len(lanes) == 2
    top_of = [GEOMETRY.to_input(lane.points)[-1, 1] for lane in lanes]
    assert max(top_of) < 25  # both still reach up to where they touch (row 10 + the blurred rows)


def test_a_dashed_lane_stays_one_lane_over_its_whole_length():
    prob, embedding = painted_outputs([(60, 120, 20, code(0))], dashes=(8, 8))
    [lane] = extract_lanes(prob, embedding, GEOMETRY, (1280, 720), PostprocessConfig(min_pixels=10)).lanes
    rows = GEOMETRY.to_input(lane.points)[:, 1]
    assert rows.max() > 126 and rows.min() < 22


def test_instance_mask_marks_each_lanes_pixels_with_its_id_at_image_size():
    prob, embedding = painted_outputs([(60, 120, 20, code(0)), (200, 136, 20, code(1))])
    result = extract_lanes(prob, embedding, GEOMETRY, (1280, 720), PostprocessConfig(min_pixels=10))
    mask = instance_mask(result.label_map, GEOMETRY, (1280, 720))
    assert mask.shape == (720, 1280) and mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1, 2}
    assert not mask[: GEOMETRY.top].any()  # the cropped sky is background
    for lane in result.lanes:
        ys, xs = np.nonzero(mask == lane.id)
        fitted_x = np.interp(ys, lane.points[::-1, 1], lane.points[::-1, 0])
        assert np.abs(xs - fitted_x).max() < 12  # within a lane width (3 input px = 15 image px) of its polyline


def test_polyline_step_is_honoured():
    prob, embedding = painted_outputs([(60, 120, 20, code(0))])
    for step in (5.0, 20.0):
        [lane] = extract_lanes(prob, embedding, GEOMETRY, (1280, 720), PostprocessConfig(min_pixels=10, polyline_step=step)).lanes
        steps = -np.diff(lane.points[:, 1])
        assert np.allclose(steps[:-1], step, atol=1e-3) and 0 < steps[-1] <= step + 1e-3  # the last one: its far end


# ---- the real detector with the built-in model ----

@pytest.fixture(scope="module")
def detector():
    return LaneDetector.from_checkpoint(BUILTIN_CHECKPOINT, device="cpu")


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    root = tmp_path_factory.mktemp("frames")
    generate_dataset(root, 4, seed=4242, workers=1)
    return [read_rgb(path) for path in sorted(root.glob("clips/**/*.jpg"))]


def test_detector_exposes_its_model_and_settings(detector):
    assert detector.model is not None and detector.model.config == load_checkpoint(BUILTIN_CHECKPOINT).model_config
    assert detector.model.config.width > 0.125  # widened (training/train_builtin.sh, stage 3)
    assert detector.post.bandwidth == 2 * 0.5  # 2 * delta_var stored in the checkpoint
    assert detector.device == torch.device("cpu")


def test_a_frame_gives_lanes_a_mask_and_per_stage_timings(detector, frames):
    detection = detector(frames[0])
    assert 2 <= len(detection.lanes) <= 6
    assert detection.instance_mask.shape == (720, 1280)
    assert set(np.unique(detection.instance_mask)) == {0} | {lane.id for lane in detection.lanes}
    assert set(detection.timings) == STAGES and all(v > 0 for v in detection.timings.values())
    assert detection.timings["total"] == pytest.approx(sum(v for k, v in detection.timings.items() if k != "total"))
    for lane in detection.lanes:
        assert lane.ground_points is None and lane.pixel_count >= detector.post.min_pixels
        assert (lane.position < 0) == (lane.points[0, 0] < 640)


def test_images_of_odd_sizes_and_a_mixed_batch(detector, frames):
    import cv2

    odd = cv2.resize(frames[1], (1001, 563), interpolation=cv2.INTER_AREA)
    small = cv2.resize(frames[2], (640, 360), interpolation=cv2.INTER_AREA)
    batch = detector([frames[0], odd, small])
    singles = [detector(image) for image in (frames[0], odd, small)]
    for detection, single, (w, h) in zip(batch, singles, [(1280, 720), (1001, 563), (640, 360)]):
        assert detection.image_size == (w, h) and detection.instance_mask.shape == (h, w)
        assert len(detection.lanes) == len(single.lanes) >= 2
        for a, b in zip(detection.lanes, single.lanes):
            assert np.allclose(a.points, b.points, atol=1e-2)
            assert (a.points[:, 0] > -w).all() and (a.points[:, 1] <= h).all()
    # the same road at half the size gives the same lanes at half the coordinates
    full = singles[0]
    half = detector(cv2.resize(frames[0], (640, 360), interpolation=cv2.INTER_AREA))
    assert len(half.lanes) == len(full.lanes)
    rows = np.arange(300, 720, 10)
    for a, b in zip(half.lanes, full.lanes):
        x_half = np.array(a.resample(rows / 2, 640)) * 2
        x_full = np.array(b.resample(rows, 1280))
        both = (x_half >= 0) & (x_full >= 0)
        assert both.sum() >= 4 and np.abs(x_half[both] - x_full[both]).max() < 16  # 3 network-input columns


def test_an_empty_road_and_an_empty_batch(detector):
    grey = np.full((720, 1280, 3), 110, np.uint8)
    detection = detector(grey)
    assert detection.lanes == [] and not detection.instance_mask.any()
    assert detector([]) == []


def test_bad_images_are_refused_with_what_was_wrong(detector):
    with pytest.raises(ValueError, match=r"expected an RGB uint8 image \[H,W,3\], got dtype float32"):
        detector(np.zeros((720, 1280, 3), np.float32))
    with pytest.raises(ValueError, match=r"shape \(720, 1280\)"):
        detector([np.zeros((720, 1280), np.uint8)])


def test_ground_plane_gives_metric_lanes_in_the_vehicle_frame(detector, frames):
    k = [1000.0, 0, 640, 0, 1000.0, 360, 0, 0, 1]
    on_ground = detector.with_ground_plane(GroundPlane.from_camera(k, height=1.5, pitch=0.05, max_distance=60))
    detection = on_ground(frames[0])
    assert detection.lanes
    for lane in detection.lanes:
        metres = lane.ground_points
        assert metres.dtype == np.float32 and metres.ndim == 2 and len(metres) >= 2 and np.isfinite(metres).all()
        assert np.all(np.diff(metres[:, 0]) > 0)  # bottom-up image points run away from the car
        assert (metres[:, 0] <= 60 + 1e-3).all()
        assert (metres[0, 1] > 0) == (lane.position < 0)  # y points left: lanes left of the car have y > 0


def test_settings_can_be_overridden_and_are_validated(detector, frames):
    strict = detector.with_settings(lane_threshold=0.999)
    assert sum(lane.pixel_count for lane in strict(frames[0]).lanes) < sum(
        lane.pixel_count for lane in detector(frames[0]).lanes)
    with pytest.raises(ValueError, match=r"PostprocessConfig.bandwidth must be > 0, got -1.0"):
        detector.with_settings(bandwidth=-1.0)
    with pytest.raises(ValueError, match="cluster_method must be one of"):
        detector.with_settings(cluster_method="kmeans")


def test_dbscan_reference_finds_the_same_lanes(detector, frames):
    fast = detector(frames[0])
    reference = detector.with_settings(cluster_method="dbscan")(frames[0])
    assert len(reference.lanes) == len(fast.lanes)
    for a, b in zip(reference.lanes, fast.lanes):
        assert abs(a.points[0, 0] - b.points[0, 0]) < 10


def test_cuda_without_cuda_is_an_error_not_a_silent_fallback():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="CUDA is not available"):
        LaneDetector.from_checkpoint(BUILTIN_CHECKPOINT, device="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_float16_on_cuda_finds_the_same_lanes_as_the_cpu(detector, frames):
    gpu = LaneDetector.from_checkpoint(BUILTIN_CHECKPOINT, device="auto")
    assert gpu.device.type == "cuda" and gpu.backend.half
    for frame in frames:
        a, b = gpu(frame), detector(frame)
        assert len(a.lanes) == len(b.lanes)
        for x, y in zip(a.lanes, b.lanes):
            assert abs(x.points[0, 0] - y.points[0, 0]) < 5
