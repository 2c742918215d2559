"""Tests for lane_seg_core.metrics: the official tuSimple scorer (LaneEval) and F1."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lane_seg_core.metrics import (
    TuSimpleScore,
    tusimple_f1,
    evaluate_tusimple,
    main,
    score_records,
    tusimple_bench,
)
from lane_seg_core.tusimple import LabelFormatError, LaneRecord

A = -2  # absent
H10 = list(range(160, 260, 10))  # 10 rows
H20 = list(range(160, 360, 10))  # 20 rows


def vertical(x: float, rows: list[int] = H10) -> list[float]:
    return [float(x)] * len(rows)


def approx3(t):
    return pytest.approx(t, abs=1e-12)


# ---------------------------------------------------------------- an independent transcription of LaneEval.bench


def _polyfit_slope(ys: np.ndarray, xs: np.ndarray) -> float:
    return np.polyfit(ys, xs, 1)[0]


def _sklearn_slope(ys: np.ndarray, xs: np.ndarray) -> float:
    from sklearn.linear_model import LinearRegression

    return LinearRegression().fit(ys[:, None], xs).coef_[0]


def ref_bench(pred, gt, y_samples, running_time, slope=_polyfit_slope):
    """Loop-for-loop LaneEval.bench from tusimple-benchmark evaluate/lane.py (slope fit swappable)."""

    def get_angle(xs, ys_all):
        keep = xs >= 0
        xs, ys = xs[keep], ys_all[keep]
        return np.arctan(slope(ys, xs)) if len(xs) > 1 else 0

    def line_accuracy(p, g, thresh):
        p = np.array([v if v >= 0 else -100 for v in p])
        g = np.array([v if v >= 0 else -100 for v in g])
        return np.sum(np.where(np.abs(p - g) < thresh, 1.0, 0.0)) / len(g)

    if any(len(p) != len(y_samples) for p in pred):
        raise Exception("Format of lanes error.")
    if running_time > 200 or len(gt) + 2 < len(pred):
        return 0.0, 0.0, 1.0
    angles = [get_angle(np.array(x_gts), np.array(y_samples)) for x_gts in gt]
    threshs = [20 / np.cos(angle) for angle in angles]
    line_accs = []
    fn = 0.0
    matched = 0.0
    for x_gts, thresh in zip(gt, threshs):
        accs = [line_accuracy(np.array(x_preds), np.array(x_gts), thresh) for x_preds in pred]
        max_acc = np.max(accs) if len(accs) > 0 else 0.0
        if max_acc < 0.85:
            fn += 1
        else:
            matched += 1
        line_accs.append(max_acc)
    fp = len(pred) - matched
    if len(gt) > 4 and fn > 0:
        fn -= 1
    s = sum(line_accs)
    if len(gt) > 4:
        s -= min(line_accs)
    return (
        s / max(min(4.0, len(gt)), 1.0),
        fp / len(pred) if len(pred) > 0 else 0.0,
        fn / max(min(len(gt), 4.0), 1.0),
    )


def random_frame(rng: np.random.Generator):
    n_rows = int(rng.integers(1, 57))
    step = int(rng.choice([5, 10, 20]))
    h = int(rng.integers(0, 300)) + step * np.arange(n_rows)
    gts = []
    for _ in range(int(rng.choice([0, 1, 2, 3, 4, 4, 5, 5, 6, 7]))):
        dy = (h - h[0]).astype(float)
        slope = float(rng.uniform(-3, 3)) if rng.random() < 0.8 else 0.0
        xs = rng.uniform(0, 1280) + slope * dy + rng.normal(0, 2e-3) * dy**2
        xs[(xs < 0) | (xs >= 1280)] = A
        xs[: int(rng.integers(0, n_rows // 2 + 1))] = A  # lane starts lower in the image
        xs[rng.random(n_rows) < 0.08] = A  # holes
        gts.append(xs)
    twin = bool(gts) and rng.random() < 0.3
    if twin:  # two gt lanes 12 px apart, one prediction between them matches both (FP < 0)
        gts.append(np.where(gts[0] >= 0, gts[0] + 12, A))
    preds = []
    for i, g in enumerate(gts):
        if twin and i == len(gts) - 1:
            continue
        if twin and i == 0:
            preds.append(np.where(g >= 0, g + 6 + rng.normal(0, 1, n_rows), A))
        elif rng.random() < 0.85:
            p = g + rng.normal(0, rng.choice([1.0, 8.0, 20.0]), n_rows) + rng.choice([0.0, 15.0, -22.0, 40.0])
            p[g < 0] = A
            if rng.random() < 0.5:  # prediction extends where gt is absent / drops points
                ext = (g < 0) & (rng.random(n_rows) < 0.5)
                p[ext] = rng.uniform(0, 1280, int(ext.sum()))
                p[rng.random(n_rows) < 0.05] = A
            preds.append(p)
    for _ in range(int(rng.choice([0, 0, 0, 1, 2, 3, 5]))):  # spurious lanes
        p = rng.uniform(0, 1280) + rng.uniform(-2, 2) * (h - h[0])
        p[rng.random(n_rows) < 0.3] = A
        preds.append(p)
    order = rng.permutation(len(preds))
    preds = [preds[i] for i in order]
    if rng.random() < 0.5:  # integer pixels, as most submissions write them
        gts = [np.where(g >= 0, np.round(g), A) for g in gts]
        preds = [np.where(p >= 0, np.round(p), A) for p in preds]
    run_time = float(rng.choice([rng.uniform(0, 190), 200.0, rng.uniform(200.001, 400), 3.0]))
    to_list = lambda lanes: [[float(v) for v in lane] for lane in lanes]  # noqa: E731
    return to_list(preds), to_list(gts), [int(v) for v in h], run_time


def test_matches_reference_transcription_on_random_frames():
    rng = np.random.default_rng(20240611)
    seen = {"slow": 0, "too_many": 0, "gt>4": 0, "fp<0": 0, "partial_fn": 0, "scored": 0}
    for _ in range(400):
        pred, gt, h, rt = random_frame(rng)
        expected = ref_bench(pred, gt, h, rt)
        got = tusimple_bench(pred, gt, h, rt)
        assert got == approx3(expected), (pred, gt, h, rt)
        assert all(type(v) is float for v in got)
        seen["slow"] += rt > 200
        seen["too_many"] += rt <= 200 and len(pred) > len(gt) + 2
        seen["gt>4"] += rt <= 200 and len(pred) <= len(gt) + 2 and len(gt) > 4
        seen["fp<0"] += got[1] < 0
        seen["partial_fn"] += 0 < got[2] < 1
        seen["scored"] += rt <= 200 and len(pred) <= len(gt) + 2
    # the random frames really exercise every rule
    assert min(seen.values()) >= 5, seen


def test_matches_reference_with_sklearn_linear_regression():
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(7)
    for _ in range(60):
        pred, gt, h, rt = random_frame(rng)
        assert tusimple_bench(pred, gt, h, rt) == approx3(ref_bench(pred, gt, h, rt, slope=_sklearn_slope))


# ---------------------------------------------------------------- hand-computed single-frame cases


def test_perfect_prediction():
    slanted = [A, A] + [300.0 + 5 * i for i in range(8)]
    gt = [vertical(100), vertical(400), slanted]
    assert tusimple_bench([list(l) for l in gt], gt, H10, 10.0) == (1.0, 0.0, 0.0)
    # prediction order does not matter
    assert tusimple_bench(gt[::-1], gt, H10, 10.0) == (1.0, 0.0, 0.0)


def test_run_time_limit():
    gt = [vertical(100), vertical(400)]
    assert tusimple_bench(gt, gt, H10, 200.0) == (1.0, 0.0, 0.0)
    assert tusimple_bench(gt, gt, H10, 200.01) == (0.0, 0.0, 1.0)
    assert tusimple_bench(gt, gt, H10, 5000) == (0.0, 0.0, 1.0)


def test_more_than_len_gt_plus_two_predictions():
    gt = [vertical(100), vertical(400)]
    spurious = [vertical(800), vertical(900), vertical(1000)]
    # len(gt) + 2 = 4 predictions are scored: 2 matched, fp = (4 - 2) / 4
    assert tusimple_bench(gt + spurious[:2], gt, H10, 1.0) == approx3((1.0, 0.5, 0.0))
    # 5 predictions: the whole frame is a miss
    assert tusimple_bench(gt + spurious, gt, H10, 1.0) == (0.0, 0.0, 1.0)


def test_more_than_four_gt_lanes():
    gt = [vertical(x) for x in (100, 300, 500, 700, 900)]
    lane2 = vertical(500)
    lane2[3] = 530.0  # 30 px off on one of 10 rows -> 0.9
    preds = [gt[0], gt[1], lane2, gt[3]]  # gt lane 4 missed
    # line_accs [1, 1, .9, 1, 0]: worst (0) dropped -> 3.9 / 4; the single miss is forgiven
    assert tusimple_bench(preds, gt, H10, 1.0) == approx3((0.975, 0.0, 0.0))
    # all five matched: worst (.9) dropped -> (1 + .9 + 1 + 1 + .9 - .9) / 4; fn stays 0, not -1
    lane4 = vertical(900)
    lane4[0] = 950.0
    assert tusimple_bench(preds + [lane4], gt, H10, 1.0) == approx3((0.975, 0.0, 0.0))
    # six gt lanes, two missed: one forgiven -> fn 1/4, accuracy (4 - 0) / 4
    gt6 = gt + [vertical(1100)]
    assert tusimple_bench(gt6[:4], gt6, H10, 1.0) == approx3((1.0, 0.0, 0.25))


def test_no_predictions():
    assert tusimple_bench([], [vertical(100), vertical(400)], H10, 1.0) == (0.0, 0.0, 1.0)
    # 5 gt lanes: 5 misses, one forgiven, divided by 4
    assert tusimple_bench([], [vertical(100 * i) for i in range(1, 6)], H10, 1.0) == (0.0, 0.0, 1.0)
    # nothing to find and nothing found
    assert tusimple_bench([], [], H10, 1.0) == (0.0, 0.0, 0.0)
    # predictions on a frame without gt lanes are all false positives
    assert tusimple_bench([vertical(100), vertical(400)], [], H10, 1.0) == (0.0, 1.0, 0.0)
    # two of three found
    gt = [vertical(100), vertical(400), vertical(700)]
    assert tusimple_bench(gt[:2], gt, H10, 1.0) == approx3((2 / 3, 0.0, 1 / 3))


def test_absent_points():
    gt = [[A, A] + [400.0] * 8]
    # absent in both -> hits
    assert tusimple_bench([[A, A] + [400.0] * 8], gt, H10, 1.0) == (1.0, 0.0, 0.0)
    # any negative value counts as absent
    assert tusimple_bench([[-1.0, -7.5] + [400.0] * 8], gt, H10, 1.0) == (1.0, 0.0, 0.0)
    # absent where gt is present -> miss (9/10 still matches)
    assert tusimple_bench([[A, A, A] + [400.0] * 7], gt, H10, 1.0) == approx3((0.9, 0.0, 0.0))
    # present where gt is absent -> miss (8/10 < 0.85 -> unmatched)
    assert tusimple_bench([[400.0] * 10], gt, H10, 1.0) == approx3((0.8, 1.0, 1.0))
    # x = 0 is a present point, not absent
    assert tusimple_bench([[0.0] * 10], [[A] * 10], H10, 1.0)[0] == 0.0


def test_angle_dependent_threshold():
    slope1 = [300.0 + 10 * i for i in range(10)]  # dx/dy = 1 -> thresh 20 / cos(45 deg) = 28.28
    assert tusimple_bench([[x + 25 for x in slope1]], [slope1], H10, 1.0) == (1.0, 0.0, 0.0)
    assert tusimple_bench([[x + 29 for x in slope1]], [slope1], H10, 1.0) == (0.0, 1.0, 1.0)
    half = [300.0 + 5 * i for i in range(10)]  # dx/dy = 0.5 -> thresh 22.36 (the slope is of x on y)
    assert tusimple_bench([[x - 22 for x in half]], [half], H10, 1.0) == (1.0, 0.0, 0.0)
    assert tusimple_bench([[x - 30 for x in half]], [half], H10, 1.0) == (0.0, 1.0, 1.0)
    # vertical: thresh exactly 20, strict inequality
    v = vertical(400)
    assert tusimple_bench([vertical(425)], [v], H10, 1.0) == (0.0, 1.0, 1.0)
    assert tusimple_bench([vertical(420)], [v], H10, 1.0) == (0.0, 1.0, 1.0)
    assert tusimple_bench([vertical(419.5)], [v], H10, 1.0) == (1.0, 0.0, 0.0)
    # the angle comes from the gt's present points only: absent rows do not slant a vertical lane
    gt = [[A, A] + [400.0] * 8]
    assert tusimple_bench([[A, A] + [425.0] * 8], gt, H10, 1.0) == approx3((0.2, 1.0, 1.0))
    # ... and from the gt, not the prediction
    assert tusimple_bench([slope1], [[x + 25 for x in slope1]], H10, 1.0) == (1.0, 0.0, 0.0)
    assert tusimple_bench([vertical(425)], [v], H10, 1.0) == (0.0, 1.0, 1.0)


def test_point_threshold_boundary():
    gt = [vertical(400, H20)]
    p17 = vertical(400, H20)
    p17[:3] = [430.0] * 3  # 17 / 20 = 0.85 -> matched
    assert tusimple_bench([p17], gt, H20, 1.0) == approx3((0.85, 0.0, 0.0))
    p16 = vertical(400, H20)
    p16[:4] = [430.0] * 4  # 16 / 20 = 0.8 -> missed
    assert tusimple_bench([p16], gt, H20, 1.0) == approx3((0.8, 1.0, 1.0))


def test_one_prediction_matching_two_gt_lanes_gives_negative_fp():
    gt = [vertical(400), vertical(410)]
    assert tusimple_bench([vertical(405)], gt, H10, 1.0) == (1.0, -1.0, 0.0)
    # a spurious second prediction is hidden: fp = (2 - 2 matched) / 2
    assert tusimple_bench([vertical(405), vertical(900)], gt, H10, 1.0) == (1.0, 0.0, 0.0)


def test_wrong_lane_length_raises():
    with pytest.raises(ValueError, match=r"prediction lane 1 has 9 points but h_samples has 10 rows"):
        tusimple_bench([vertical(100), [100.0] * 9], [vertical(100)], H10, 1.0)
    # checked before the run-time and prediction-count rules, as in the official code
    with pytest.raises(ValueError, match="prediction lane 0"):
        tusimple_bench([[1.0] * 11], [vertical(100)], H10, 999.0)
    with pytest.raises(ValueError, match=r"ground-truth lane 0 has 3 points"):
        tusimple_bench([], [[1.0, 2.0, 3.0]], H10, 1.0)


# ---------------------------------------------------------------- F1 and the score object


def test_tusimple_f1():
    assert tusimple_f1(0.2, 0.3) == pytest.approx(2 * 0.8 * 0.7 / 1.5)
    assert tusimple_f1(0.0, 0.0) == 1.0
    assert tusimple_f1(0.0, 1.0) == 0.0  # no lane found at all (CLRNet's formula says 0.67 here)
    assert tusimple_f1(1.0, 1.0) == 0.0
    # CLRNet ResNet-18 on tuSimple: FP 2.28, FN 1.92 -> F1 97.89/97.90
    assert tusimple_f1(0.0228, 0.0192) == pytest.approx(0.97899, abs=1e-4)


def test_score_summary_format():
    s = TuSimpleScore(accuracy=0.96844, fp=0.02281, fn=0.01925, f1=0.979, frames=2782)
    assert s.summary() == "tuSimple Accuracy=0.968 FP=0.023 FN=0.019"
    with pytest.raises(AttributeError):
        s.accuracy = 1.0  # frozen


def rec(raw_file, lanes, h=H10, run_time=None):
    return LaneRecord(raw_file, tuple(h), tuple(tuple(l) for l in lanes), run_time)


GT_A = rec("clips/a/20.jpg", [vertical(100), vertical(400)])
GT_B = rec("clips/b/20.jpg", [vertical(100), vertical(400), vertical(700), vertical(1000)])
GT_C = rec("clips/c/20.jpg", [vertical(300)])


def good_preds():
    return [
        rec("clips/b/20.jpg", [vertical(100), vertical(400), vertical(700), vertical(1200)], run_time=10.0),
        rec("clips/a/20.jpg", [vertical(100), vertical(400)], run_time=10.0),
        rec("clips/c/20.jpg", [vertical(300)], run_time=300.0),
    ]


def test_score_records_means_over_frames():
    score = score_records(good_preds(), [GT_A, GT_B, GT_C])
    # frames: A (1, 0, 0), B (3/4, 1/4, 1/4), C too slow (0, 0, 1)
    assert score.frames == 3
    assert score.accuracy == pytest.approx(1.75 / 3)
    assert score.fp == pytest.approx(0.25 / 3)
    assert score.fn == pytest.approx(1.25 / 3)
    assert score.f1 == pytest.approx(tusimple_f1(0.25 / 3, 1.25 / 3))


def test_score_records_errors():
    gts = [GT_A, GT_B, GT_C]
    with pytest.raises(ValueError, match="clips/c/20.jpg"):
        score_records(good_preds()[:2], gts)  # missing frame
    with pytest.raises(ValueError, match="clips/zzz.jpg"):
        score_records(good_preds() + [rec("clips/zzz.jpg", [], run_time=1.0)], gts)
    with pytest.raises(ValueError, match="clips/a/20.jpg.*more than one"):
        score_records(good_preds() + [good_preds()[1]], gts)
    with pytest.raises(ValueError, match="clips/a/20.jpg.*run_time"):
        score_records([rec("clips/a/20.jpg", [vertical(100)])], [GT_A])
    with pytest.raises(ValueError, match="clips/a/20.jpg.*more than once"):
        score_records(good_preds(), gts + [GT_A])
    with pytest.raises(ValueError, match="clips/a/20.jpg.*lane 0 has 3 points"):
        score_records([rec("clips/a/20.jpg", [[1.0, 2.0, 3.0]], h=[1, 2, 3], run_time=1.0)], [GT_A])
    with pytest.raises(ValueError, match="no ground-truth"):
        score_records([], [])


# ---------------------------------------------------------------- files and CLI


def write_lines(path, objs):
    path.write_text("".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs))
    return path


def frame(raw_file, lanes, h=H10, run_time=None):
    obj = {"lanes": lanes, "h_samples": h, "raw_file": raw_file}
    if run_time is not None:
        obj["run_time"] = run_time
    return obj


@pytest.fixture
def files(tmp_path):
    gt = write_lines(tmp_path / "test_label.json", [
        frame("clips/a/20.jpg", [[A, A] + [100] * 8, [400] * 10, [A] * 10]),
        frame("clips/b/20.jpg", [[100] * 10, [400] * 10, [700] * 10, [1000] * 10]),
    ])
    pred = write_lines(tmp_path / "pred.json", [
        frame("clips/b/20.jpg", [[100] * 10, [400] * 10, [700] * 10, [A] * 10], run_time=12.5),
        frame("clips/a/20.jpg", [[A, A] + [110] * 8, [400] * 10], run_time=200),
    ])
    return tmp_path, pred, gt


def test_evaluate_tusimple(files):
    tmp_path, pred, gt = files
    score = evaluate_tusimple(pred, gt)
    # a: the all-absent gt lane is hit only on the 2 rows where pred 0 is absent too -> accs [1, 1, .2]
    a = tusimple_bench([[A, A] + [110] * 8, [400] * 10], [[A, A] + [100] * 8, [400] * 10, [A] * 10], H10, 200)
    assert a == approx3((2.2 / 3, 0.0, 1 / 3))
    # b: accs [1, 1, 1, 0] -> acc 3/4, fp 1/4 (the all-absent pred), fn 1/4
    assert score.frames == 2
    assert score.accuracy == pytest.approx((2.2 / 3 + 0.75) / 2)
    assert score.fp == pytest.approx(0.25 / 2)
    assert score.fn == pytest.approx((1 / 3 + 0.25) / 2)
    # the same frames split over two gt files (the train set ships several)
    lines = gt.read_text().splitlines()
    g1 = write_lines(tmp_path / "label_data_1.json", lines[:1])
    g2 = write_lines(tmp_path / "label_data_2.json", lines[1:])
    assert evaluate_tusimple(str(pred), [g1, str(g2)]) == score


def test_evaluate_tusimple_file_errors(files):
    tmp_path, pred, gt = files
    pred_lines = pred.read_text().splitlines()
    missing = write_lines(tmp_path / "missing.json", pred_lines[:1])
    with pytest.raises(ValueError, match="clips/a/20.jpg"):
        evaluate_tusimple(missing, gt)
    unknown = write_lines(tmp_path / "unknown.json", pred_lines + [
        json.dumps(frame("clips/x/20.jpg", [], run_time=1.0))])
    with pytest.raises(ValueError, match="clips/x/20.jpg"):
        evaluate_tusimple(unknown, gt)
    broken = write_lines(tmp_path / "broken.json", [pred_lines[0], '{"lanes": [[1, 2', pred_lines[1]])
    with pytest.raises(LabelFormatError, match=r"broken\.json:2"):
        evaluate_tusimple(broken, gt)
    no_rt = write_lines(tmp_path / "no_rt.json", [pred_lines[0], json.dumps(frame("clips/a/20.jpg", []))])
    with pytest.raises(LabelFormatError, match=r"no_rt\.json:2.*run_time"):
        evaluate_tusimple(no_rt, gt)
    with pytest.raises(FileNotFoundError):
        evaluate_tusimple(tmp_path / "nope.json", gt)


def test_main_prints_scores(files, capsys):
    _, pred, gt = files
    assert main([str(pred), str(gt)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tuSimple Accuracy=0.742 FP=0.125 FN=0.292 F1=")
    assert "frames=2" in out
    assert main([str(pred), str(gt), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["Accuracy"] == pytest.approx((2.2 / 3 + 0.75) / 2) and data["frames"] == 2


def test_main_reports_errors(files, capsys):
    tmp_path, _, gt = files
    assert main([str(tmp_path / "nope.json"), str(gt)]) == 2
    assert "nope.json" in capsys.readouterr().err
