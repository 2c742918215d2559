"""Refusing non-lanes: the vanishing point, cuts where a lane turns back or rises past it, crossings, confidence."""

import re

import numpy as np
import pytest
import torch

from lane_seg_core.plausibility import crossings, lane_confidence, turn_back_cut, vanishing_point
from lane_seg_core.postprocess import PostprocessConfig, extract_lanes
from lane_seg_core.preprocess import Preprocessing

GEOMETRY = Preprocessing(input_width=256, input_height=128, crop_top=0.2).geometry(1280, 720)
SIZE = (1280, 720)
HORIZON, CENTRE = 250.0, 640.0


def road_lane(slope: float, curve: float = 3000.0):
    """x(y) of a lane on a road bending right, seen by a level camera: the lateral offset gives the slope of the
    near part; the bend adds the same curve / (y - horizon) to every lane (large near the horizon)."""
    return lambda y: CENTRE + slope * (y - HORIZON) + curve / (y - HORIZON)


def paint(lanes, probability=None):
    """Network outputs with lanes (x(y) in image pixels, top row, bottom row), 3 input px wide, one embedding
    code each; `probability` per lane (default 1)."""
    prob = torch.zeros(128, 256)
    embedding = torch.full((5, 128, 256), -9.0)
    rows = np.arange(128)
    image_y = GEOMETRY.to_image(np.stack([np.zeros(128), rows], 1))[:, 1]
    for k, (x_of, top, bottom) in enumerate(lanes):
        for row, y in zip(rows, image_y):
            if not top <= y <= bottom:
                continue
            col = int(round(GEOMETRY.to_input([[x_of(y), y]])[0, 0]))
            if not 1 <= col <= 254:
                continue
            prob[row, col - 1:col + 2] = 1.0 if probability is None else probability[k]
            embedding[:, row, col - 1:col + 2] = 0.0
            embedding[k % 5, row, col - 1:col + 2] = 3.0 * (1 + k // 5)
    return prob, embedding


def lanes_of(lanes, probability=None, **settings):
    prob, embedding = paint(lanes, probability)
    config = PostprocessConfig(**{"min_pixels": 10, "lane_threshold": 0.5, **settings})
    return extract_lanes(prob, embedding, GEOMETRY, SIZE, config)


CURVED_ROAD = [(road_lane(-1.1), 290, 719), (road_lane(1.1), 290, 719), (road_lane(-3.3), 290, 719),
               (road_lane(3.3), 290, 719)]  # the outer two enter the image at its sides, 400 rows down
NOT_CONVERGING = (lambda y: 1200 + 0.186 * (y - 719), 450, 719)  # e.g. the edge of a truck: aims far right


def bottom_x(result):
    return sorted(round(float(lane.points[0, 0])) for lane in result.lanes)


def test_every_lane_of_a_curved_road_is_kept_as_long_as_without_the_rules():
    result = lanes_of(CURVED_ROAD)
    assert len(result.lanes) == 4
    x, y = result.vanishing_point
    assert abs(y - HORIZON) < 10 and abs(x - CENTRE) < 20  # where the near parts point
    lenient = lanes_of(CURVED_ROAD, vp_tolerance=10.0, max_turn_back=10.0, min_confidence=0.0)
    for lane, free in zip(result.lanes, lenient.lanes):
        assert lane.points[-1, 1] == pytest.approx(free.points[-1, 1], abs=0.5) and lane.points[-1, 1] < 330
        assert lane.confidence > 0.7


def test_a_lane_that_misses_the_vanishing_point_is_dropped_and_the_road_kept():
    result = lanes_of(CURVED_ROAD + [NOT_CONVERGING])
    assert len(result.lanes) == 4 and bottom_x(result) == bottom_x(lanes_of(CURVED_ROAD))
    assert len(lanes_of(CURVED_ROAD + [NOT_CONVERGING], vp_tolerance=10.0).lanes) == 5  # the rule dropped it


def test_with_two_lanes_the_vanishing_point_still_refuses_a_third_that_misses_it():
    two = CURVED_ROAD[:2]
    assert len(lanes_of(two).lanes) == 2 and lanes_of(two).vanishing_point is not None
    result = lanes_of(two + [NOT_CONVERGING])
    assert bottom_x(result) == bottom_x(lanes_of(two))


def test_two_lanes_that_meet_nowhere_ahead_keep_the_stronger_one():
    left = (road_lane(-1.1, 0.0), 300, 719)
    away = (lambda y: 700 - 2.0 * (y - 719), 450, 719)  # heads up-right faster than the left lane: they part
    result = lanes_of([left, away])
    assert len(result.lanes) == 1 and result.vanishing_point is None
    assert result.lanes[0].points[0, 0] < 300  # the longer lane


def test_a_lane_above_the_vanishing_point_is_cut_there_with_its_pixels():
    straight = [(road_lane(s, 0.0), 270, 719) for s in (-1.1, 1.1, 3.3)]
    through = (road_lane(-1.1, 0.0), 170, 719)  # continues past the point where the lanes meet, into the sky
    result = lanes_of(straight[1:] + [through])
    vp_row = result.vanishing_point[1]
    assert abs(vp_row - HORIZON) < 10
    lane = min(result.lanes, key=lambda lane: lane.points[0, 0])
    assert lane.points[:, 1].min() >= vp_row - 0.5
    rows = np.nonzero(result.label_map == lane.id)[0]
    assert GEOMETRY.to_image(np.stack([np.zeros(len(rows)), rows], 1))[:, 1].min() >= vp_row - 1.0
    assert lanes_of(straight[1:] + [through], vp_tolerance=10.0).lanes  # the clip is no side effect of dropping


def test_a_lane_that_bends_back_is_cut_where_it_turns():
    hook = (lambda y: 300 + 0.004 * (y - 450) ** 2, 300, 719)  # left 289 px up to row 450, then 90 px back right
    [lane] = lanes_of([hook]).lanes
    xs, ys = lane.points[:, 0], lane.points[:, 1]
    assert ys.min() == pytest.approx(450 - np.sqrt(0.05 * 720 / 0.004), abs=12)  # where it is 36 px back
    assert xs.max() - xs[np.argmin(xs):].max() >= 0 and (xs[np.argmin(xs):] - xs.min()).max() <= 0.05 * 720 + 1
    [whole] = lanes_of([hook], max_turn_back=1.0).lanes
    assert whole.points[:, 1].min() < 310


def test_a_lane_that_crosses_two_others_is_dropped():
    straight = [(road_lane(s, 0.0), 270, 719) for s in (-1.1, 1.1, 3.3)]
    # starts beside the left lane, aiming near the vanishing point, and sweeps right across the other two
    across = (lambda y: road_lane(-1.1, 0.0)(y) + 0.0016 * (719 - y) ** 2, 300, 719)
    assert len(lanes_of(straight + [across]).lanes) == 3
    assert len(lanes_of(straight + [across], max_turn_back=2.0).lanes) == 4


def test_a_fainter_smaller_lane_has_a_lower_confidence_and_min_confidence_drops_it():
    road = [(road_lane(-1.1, 0.0), 270, 719), (road_lane(1.1, 0.0), 270, 719), (road_lane(3.3, 0.0), 300, 440)]
    result = lanes_of(road, probability=[1.0, 0.95, 0.6])
    by_x = sorted(result.lanes, key=lambda lane: lane.points[0, 0])
    assert by_x[0].confidence > by_x[1].confidence > by_x[2].confidence > 0
    assert all(0.0 <= lane.confidence <= 1.0 for lane in result.lanes)
    kept = lanes_of(road, probability=[1.0, 0.95, 0.6], min_confidence=(by_x[1].confidence + by_x[2].confidence) / 2)
    assert len(kept.lanes) == 2


def test_confidence_falls_with_probability_size_and_miss():
    base = dict(mean_probability=np.array([0.95]), pixels=np.array([100.0]), distance=np.array([10.0]))
    settings = dict(lane_threshold=0.9, confidence_pixels=50.0, tolerance=72.0)
    reference = lane_confidence(**base, **settings)[0]
    for field, worse in (("mean_probability", 0.92), ("pixels", 30.0), ("distance", 40.0)):
        assert lane_confidence(**{**base, field: np.array([worse])}, **settings)[0] < reference
    no_point = lane_confidence(**{**base, "distance": np.array([np.inf])}, **settings)[0]
    assert reference < no_point <= 1.0  # nothing to aim at: that factor is 1
    assert lane_confidence(np.array([0.9]), np.array([100.0]), np.array([0.0]), **settings)[0] == 0.0


def test_vanishing_point_of_two_lines_and_an_outlier():
    x0, y0 = np.array([100.0, 1100.0, 1200.0]), np.full(3, 700.0)
    slope = (x0 - 640.0) / (700.0 - 250.0)  # all through (640, 250) ...
    slope[2] = 0.2  # ... but the third
    point, distance = vanishing_point(x0, y0, slope, np.array([300.0, 300.0, 100.0]), 50.0)
    assert point == pytest.approx([640.0, 250.0], abs=1e-6)
    assert distance[:2] == pytest.approx([0.0, 0.0], abs=1e-6) and distance[2] > 300
    point, distance = vanishing_point(x0[:1], y0[:1], slope[:1], np.array([1.0]), 50.0)
    assert point is None and np.isinf(distance).all()
    diverging = vanishing_point(np.array([100.0, 300.0]), y0[:2], np.array([0.5, -0.5]), np.ones(2), 50.0)
    assert diverging[0] is None  # they meet below the lanes
    outside = vanishing_point(x0[:2], y0[:2], slope[:2], np.ones(2), 50.0, region=(0.0, 1280.0, 300.0, 720.0))
    assert outside[0] is None


def test_turn_back_cut_leaves_curves_and_wobbles_and_cuts_hooks():
    y = np.arange(300.0, 720.0, 5.0)
    bend = 200 + 0.002 * (719 - y) ** 2  # curves one way only
    wobble = 600 + 8 * np.sin(y / 20)  # back and forth by less than the tolerance
    hook = 900 - 0.004 * (y - 450) ** 2  # right up to row 450, then back
    cut = turn_back_cut(np.stack([bend, wobble, hook]), y, np.zeros(3, int), np.full(3, len(y) - 1), 36.0)
    assert np.isinf(cut[:2]).all() and cut[0] < 0
    assert 450 - np.sqrt(36 / 0.004) - 5 <= cut[2] <= 450 - np.sqrt(36 / 0.004) + 5


def test_crossings_count_the_lanes_each_one_crosses():
    rows = np.arange(50.0)
    x = np.stack([100 + 0 * rows, 200 + 0 * rows, 50 + 4 * rows])  # the third crosses both
    assert crossings(x, np.ones_like(x, dtype=bool), 5.0).tolist() == [1, 1, 2]
    span = np.ones_like(x, dtype=bool)
    span[2, 10:] = False  # it ends before it reaches the first
    assert crossings(x, span, 5.0).tolist() == [0, 0, 0]


@pytest.mark.parametrize("field, value, allowed", [("vp_tolerance", 0.0, "> 0"), ("max_turn_back", -0.1, "> 0"),
                                                   ("confidence_pixels", 0.0, "> 0"),
                                                   ("min_confidence", 1.0, "in [0, 1)")])
def test_new_settings_are_validated_with_the_name_and_range(field, value, allowed):
    with pytest.raises(ValueError, match=rf"PostprocessConfig\.{field} must be {re.escape(allowed)}"):
        PostprocessConfig(**{field: value})


def test_a_checkpoint_saved_before_these_settings_gets_their_defaults():
    old = {"lane_threshold": 0.9, "bandwidth": 1.0, "min_pixels": 20, "poly_degree": 2, "max_lanes": 6,
           "extend_to_bottom": True, "polyline_step": 10.0, "cluster_method": "meanshift"}
    config = PostprocessConfig.from_dict(old)
    assert (config.vp_tolerance, config.max_turn_back, config.min_confidence) == (
        PostprocessConfig().vp_tolerance, PostprocessConfig().max_turn_back, PostprocessConfig().min_confidence)
    assert PostprocessConfig.from_dict(config.to_dict()) == config  # saved with a checkpoint, read back



STRAIGHT_ROAD = [(lambda y, s=s: CENTRE + s * (y - HORIZON), 440, 719) for s in (-2.0, -0.7, 0.7, 2.0)]


def test_lanes_found_only_near_the_car_continue_to_where_labels_end():
    short = lanes_of(STRAIGHT_ROAD, reach_below_vp=0.0)
    reached = lanes_of(STRAIGHT_ROAD, reach_below_vp=0.035)
    assert short.vanishing_point is not None
    x_vp, y_vp = reached.vanishing_point
    assert abs(x_vp - CENTRE) < 5 and abs(y_vp - HORIZON) < 5
    assert len(reached.lanes) == len(short.lanes) == 4
    for near, far in zip(short.lanes, reached.lanes):
        assert near.points[:, 1].min() > 430  # the pixels end 190 rows below the horizon
        assert far.points[:, 1].min() == pytest.approx(max(y_vp + 0.035 * 720, near.points[-1, 1] - 0.2 * 720), abs=0.5)
        assert far.points[:, 1].min() < near.points[:, 1].min() - 0.19 * 720  # at most 0.2 image heights more
        added = far.points[far.points[:, 1] < near.points[:, 1].min()]
        assert len(added) >= 10
        x_top, y_top = near.points[-1]
        on_line = x_top + (x_vp - x_top) * (y_top - added[:, 1]) / (y_top - y_vp)
        assert np.abs(added[:, 0] - on_line).max() < 2.0  # straight on, towards the vanishing point
        np.testing.assert_array_equal(far.points[: len(near.points)], near.points)


def test_reach_below_vp_is_a_checked_setting():
    with pytest.raises(ValueError, match="reach_below_vp"):
        PostprocessConfig(reach_below_vp=-0.1)
