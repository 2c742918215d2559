"""First post-processing: clustering embeddings, fitting lanes, and the ceiling with perfect outputs."""

import numpy as np
import pytest
import torch

from lane_seg_core.dataset import TuSimpleDataset
from lane_seg_core.metrics import score_records
from lane_seg_core.postprocess import PostprocessConfig, extract_lanes
from lane_seg_core.preprocess import Preprocessing
from lane_seg_core.synth import generate_dataset
from lane_seg_core.tusimple import LaneRecord

PREP = Preprocessing(input_width=256, input_height=128, crop_top=0.2)


@pytest.fixture(scope="module")
def synth_frames(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, 30, seed=99, workers=1)
    return root


def test_perfect_outputs_score_near_the_ceiling(synth_frames):
    """Ground-truth masks and ideal embeddings through the post-processing score like the official GT."""
    ds = TuSimpleDataset(synth_frames, PREP, lane_thickness=3)
    preds = []
    for i, record in enumerate(ds.records):
        _, binary, instances = ds[i]
        embedding = torch.zeros(5, *instances.shape)
        for k in range(1, int(instances.max()) + 1):
            embedding[(k - 1) % 5][instances == k] = 3.0 * (1 + (k - 1) // 5)
        lanes = extract_lanes(binary.float(), embedding, PREP.geometry(1280, 720), (1280, 720), PostprocessConfig()).lanes
        assert [lane.id for lane in lanes] == list(range(1, len(lanes) + 1))
        for left, right in zip(lanes, lanes[1:]):  # left to right wherever both are in the image
            x_left, x_right = (np.array(lane.resample(range(300, 720, 10), 1280)) for lane in (left, right))
            both = (x_left >= 0) & (x_right >= 0)
            assert (x_left[both] < x_right[both]).all()
        resampled = tuple(tuple(lane.resample(record.h_samples, 1280)) for lane in lanes)
        preds.append(LaneRecord(record.raw_file, record.h_samples, resampled, 0.0))
    score = score_records(preds, ds.records)
    assert score.accuracy >= 0.97 and score.fp <= 0.02 and score.fn <= 0.02


def test_no_lane_pixels_is_an_empty_result():
    result = extract_lanes(torch.zeros(128, 256), torch.zeros(5, 128, 256), PREP.geometry(1280, 720),
                           (1280, 720), PostprocessConfig())
    assert result.lanes == [] and result.label_map.shape == (128, 256) and not result.label_map.any()


@pytest.mark.parametrize("field, value", [("lane_threshold", 1.0), ("bandwidth", 0.0), ("min_pixels", 0),
                                          ("poly_degree", 9), ("max_lanes", 0)])
def test_postprocess_settings_are_validated_with_the_name_and_range(field, value):
    with pytest.raises(ValueError, match=rf"PostprocessConfig.{field} must be (in|>)"):
        PostprocessConfig(**{field: value})


def test_robust_polyfit_ignores_outliers():
    from lane_seg_core.postprocess import robust_polyfit

    y = np.arange(300, 700, 10, dtype=float)
    x = 0.002 * (y - 300) ** 2 + 0.5 * y + 100
    x_bad = x.copy()
    x_bad[[5, 20, 30]] += [80, -120, 60]  # pixels of a neighbouring lane or a guard rail
    coefficients, inliers = robust_polyfit(y, x_bad, np.ones_like(y), 2, min_tolerance=3.0)
    assert not inliers[[5, 20, 30]].any() and inliers.sum() == len(y) - 3
    assert np.abs(np.polyval(coefficients, y) - x).max() < 1e-6


def test_lanes_with_a_gap_at_the_bottom_continue_straight_to_the_image_bottom():
    """A dashed lane whose last dash ends above the bottom still reaches the bottom, along its near-field slope."""
    geometry = PREP.geometry(1280, 720)
    prob = torch.zeros(128, 256)
    rows = torch.arange(20, 100)
    cols = (60 + (rows - 20) * 0.5).round().long()
    prob[rows, cols] = 1.0
    embedding = torch.zeros(5, 128, 256)
    for extend, expected_bottom in ((True, 719.0), (False, None)):
        [lane] = extract_lanes(prob, embedding, geometry, (1280, 720),
                               PostprocessConfig(min_pixels=5, extend_to_bottom=extend)).lanes
        assert lane.points[0, 1] == pytest.approx(expected_bottom or geometry.to_image([[0, 99.5]])[0, 1], abs=0.01)
        if extend:
            # the continuation keeps the lane's slope: x grows 0.5 input px per input row
            slope = (lane.points[0, 0] - lane.points[10, 0]) / (lane.points[0, 1] - lane.points[10, 1])
            assert slope == pytest.approx(0.5 * geometry.scale_y / geometry.scale_x, rel=0.05)
