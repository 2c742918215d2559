"""CULane labels: `*.lines.txt` parsed, resampled to rows, detected in a folder, trained on and evaluated."""

import re
import shutil

import cv2
import numpy as np
import pytest
import torch

from lane_seg_core import culane
from lane_seg_core.cli import main as cli_main
from lane_seg_core.dataset import TuSimpleDataset
from lane_seg_core.evaluate import load_ground_truth
from lane_seg_core.labels import read_folder
from lane_seg_core.preprocess import Preprocessing
from lane_seg_core.tusimple import ABSENT, H_SAMPLES, LabelFormatError, lane_points, read_records
from tusimple_folders import straight_lane, write_folder

PREP = Preprocessing(input_width=256, input_height=128, crop_top=0.2)


def write_image(path, width=1640, height=590):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((height, width, 3), 90, np.uint8))


def write_lines(path, lanes):
    """lanes: lists of (x, y) points; one line of "x y x y ..." per lane."""
    path.write_text("".join(" ".join(str(v) for point in lane for v in point) + " \n" for lane in lanes))


def as_culane(records, source, target):
    """Copy each record's image from `source` to `target` with its lanes written beside it as `*.lines.txt`."""
    for record in records:
        image = target / record.raw_file
        image.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / record.raw_file, image)
        lanes = [lane_points(lane, record.h_samples)[::-1] for lane in record.lanes]  # bottom up, as CULane writes
        write_lines(image.with_name(image.stem + ".lines.txt"), lanes)


def test_read_lanes_gives_the_points_of_each_line_and_skips_blank_lines(tmp_path):
    path = tmp_path / "a.lines.txt"
    path.write_text("532.5 590 540.25 580 \n\n  -3.5 570 12 560\n")
    lanes = culane.read_lanes(path)
    assert len(lanes) == 2
    np.testing.assert_array_equal(lanes[0], [[532.5, 590], [540.25, 580]])
    np.testing.assert_array_equal(lanes[1], [[-3.5, 570], [12, 560]])
    assert lanes[0].dtype == np.float64
    path.write_text("")
    assert culane.read_lanes(path) == []


@pytest.mark.parametrize("content, line, message", [
    ("1 590 2 580\n1 590 2\n", 2, "3 values, expected x y pairs"),
    ("\n\n10 590 x 580\n", 3, "'x' is not a number"),
    ("10 590 nan 580\n", 1, "'nan' is not a finite number"),
])
def test_malformed_lines_name_the_file_and_the_line(tmp_path, content, line, message):
    path = tmp_path / "bad.lines.txt"
    path.write_text(content)
    with pytest.raises(LabelFormatError, match=rf"bad\.lines\.txt:{line}: {re.escape(message)}"):
        culane.read_lanes(path)


def test_rows_run_every_10_pixels_up_from_10_above_the_bottom():
    assert culane.rows_for_height(590) == tuple(range(0, 590, 10))
    assert culane.rows_for_height(595) == tuple(range(5, 595, 10))
    assert set(H_SAMPLES) <= set(culane.rows_for_height(720)) and culane.rows_for_height(720)[-1] == 710


def test_straight_lanes_are_resampled_exactly_off_image_points_dropped_left_to_right(tmp_path):
    write_image(tmp_path / "f.jpg")  # 1640 x 590
    right = [(1000 + 2 * (590 - y), y) for y in (590, 490, 390, 290, 270, 250)]  # x 1640 and 1680: off the image
    left = [(690 - y, y) for y in range(590, 289, -50)]  # points every 50 rows, the rows in between interpolated
    write_lines(tmp_path / "f.lines.txt", [right, [(-5, 590), (-1, 500)], left])
    record = culane.read_record(tmp_path, tmp_path / "f.lines.txt")
    rows = culane.rows_for_height(590)
    assert record.raw_file == "f.jpg" and record.h_samples == rows
    assert len(record.lanes) == 2  # the lane wholly left of the image is dropped
    assert record.lanes[0] == tuple(690.0 - r if r >= 290 else ABSENT for r in rows)
    assert record.lanes[1] == tuple(2180.0 - 2 * r if r >= 290 else ABSENT for r in rows)


def test_a_folder_is_searched_recursively_and_keeps_its_own_paths(tmp_path):
    write_image(tmp_path / "driver_1/05.MP4/00000.jpg")
    write_lines(tmp_path / "driver_1/05.MP4/00000.lines.txt", [[(100, 580), (120, 560)]])
    write_image(tmp_path / "driver_1/06.MP4/00030.png", width=800, height=300)
    (tmp_path / "driver_1/06.MP4/00030.lines.txt").write_text("")
    write_image(tmp_path / "driver_1/06.MP4/unlabelled.jpg")
    records = read_folder(tmp_path)
    assert [r.raw_file for r in records] == ["driver_1/05.MP4/00000.jpg", "driver_1/06.MP4/00030.png"]
    assert records[0].lanes == (tuple(100.0 + (580 - r) if r >= 560 else ABSENT for r in records[0].h_samples),)
    assert records[1].lanes == () and records[1].h_samples == culane.rows_for_height(300)


def test_folders_without_labels_with_both_formats_or_a_label_without_image_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no label_data_\*\.json or test_label\.json .*\*\.lines\.txt"):
        read_folder(tmp_path)
    (tmp_path / "a.lines.txt").write_text("1 590 2 580\n")
    with pytest.raises(FileNotFoundError, match=r"a\.lines\.txt: no image beside it"):
        TuSimpleDataset(tmp_path, PREP)
    write_folder(tmp_path, [[straight_lane(300, 600)]])
    with pytest.raises(ValueError, match=r"both tuSimple labels \(label_data_test\.json\) and 1 CULane"):
        load_ground_truth(tmp_path)


def test_the_dataset_and_the_trainer_read_culane_lanes_as_the_same_lanes_in_tusimple_format(tmp_path):
    tusimple, culane_dir = tmp_path / "tusimple", tmp_path / "culane"
    tusimple.mkdir()
    write_folder(tusimple, [[straight_lane(1100, 700), straight_lane(200, 600)],
                            [straight_lane(640, 640, y_top=200)], []])
    as_culane(read_records(tusimple / "label_data_test.json"), tusimple, culane_dir)
    from_tusimple, from_culane = TuSimpleDataset(tusimple, PREP), TuSimpleDataset(culane_dir, PREP)
    assert len(from_culane) == 3
    by_file = {r.raw_file: i for i, r in enumerate(from_culane.records)}
    for i, record in enumerate(from_tusimple.records):
        j = by_file[record.raw_file]
        other = from_culane.records[j]
        expected = sorted(lane_points(lane, record.h_samples) for lane in record.lanes)
        assert sorted(lane_points(lane, other.h_samples) for lane in other.lanes) == expected
        a, b = from_tusimple[i], from_culane[j]
        assert torch.equal(a.image, b.image) and torch.equal(a.instances, b.instances)
        assert int(a.binary.sum()) > 0 or not record.lanes
    truth = {r.raw_file: sorted(lane_points(lane, r.h_samples) for lane in r.lanes) for r in load_ground_truth(culane_dir)}
    assert truth == {r.raw_file: sorted(lane_points(lane, r.h_samples) for lane in r.lanes)
                     for r in from_tusimple.records}


def test_lane_seg_eval_scores_a_culane_folder_at_its_own_rows(tmp_path, capsys):
    from lane_seg_core.synth import generate_dataset

    tusimple, culane_dir = tmp_path / "tusimple", tmp_path / "culane"
    label_file = generate_dataset(tusimple, 3, seed=777_002, workers=1)
    truth = read_records(label_file)
    as_culane(truth, tusimple, culane_dir)
    args = ["--device", "cpu", "--threads", "1", "--ignore-run-time"]
    assert cli_main(["eval", "--data", str(culane_dir), "--out", str(tmp_path / "culane.json"), *args]) == 0
    out = capsys.readouterr().out
    figures = dict(re.findall(r"(Accuracy|FP|FN)=([\d.]+)", out))
    # scored at tuSimple's rows instead of CULane's, every lane would miss (Accuracy near 0, FP = FN = 1);
    # 0.1 leaves the built-in model one wrong lane of the 12
    assert "frames=3 " in out and float(figures["Accuracy"]) >= 0.9, out
    assert float(figures["FP"]) <= 0.1 and float(figures["FN"]) <= 0.1, out
    predictions = read_records(tmp_path / "culane.json")
    assert sorted(p.raw_file for p in predictions) == sorted(r.raw_file for r in truth)
    assert all(p.h_samples == culane.rows_for_height(720) for p in predictions)
