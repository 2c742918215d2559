"""tuSimple dataset: masks drawn at the input size, lanes numbered left to right, augmentation, bad data."""

import json

import numpy as np
import pytest
import torch

from lane_seg_core.dataset import Augmentation, TuSimpleDataset, draw_instances
from lane_seg_core.preprocess import Preprocessing
from lane_seg_core.tusimple import LabelFormatError
from tusimple_folders import straight_lane, write_folder

PREP = Preprocessing(input_width=256, input_height=128, crop_top=0.2)


def test_sample_shapes_types_and_normalisation(tmp_path):
    write_folder(tmp_path, [[straight_lane(300, 600), straight_lane(1000, 700)]])
    image, binary, instances = TuSimpleDataset(tmp_path, PREP)[0]
    assert image.shape == (3, 128, 256) and image.dtype == torch.float32
    assert binary.shape == instances.shape == (128, 256) and instances.dtype == torch.long
    # the grey road (90/255) normalised with ImageNet statistics, the painted lane much brighter
    road = (90 / 255 - PREP.mean[0]) / PREP.std[0]
    assert image[0, 120, 5].item() == pytest.approx(road, abs=0.05)
    assert torch.equal(binary, (instances > 0).long())


def test_lanes_are_numbered_left_to_right_at_the_bottom_whatever_the_file_order(tmp_path):
    lanes = [straight_lane(1100, 700), straight_lane(200, 600), straight_lane(640, 640)]
    write_folder(tmp_path, [lanes])
    _, _, instances = TuSimpleDataset(tmp_path, PREP)[0]
    bottom = instances[-2]
    ids_left_to_right = [int(v) for v in torch.unique_consecutive(bottom[bottom > 0])]
    assert ids_left_to_right == [1, 2, 3]


def test_lanes_are_drawn_at_input_resolution_with_the_given_thickness(tmp_path):
    write_folder(tmp_path, [[straight_lane(640, 640, y_top=200)]])
    for thickness in (1, 3, 5):
        _, binary, _ = TuSimpleDataset(tmp_path, PREP, lane_thickness=thickness)[0]
        row = binary[100]
        assert int(row.sum()) == thickness  # a vertical lane: exactly `thickness` pixels per row
        centre = (640 + 0.5) * 256 / 1280 - 0.5
        assert abs(float(torch.nonzero(row).float().mean()) - centre) <= 0.5
        assert set(torch.unique(binary).tolist()) == {0, 1}  # nearest drawing, no interpolated values


def test_masks_match_the_painted_lanes(tmp_path):
    write_folder(tmp_path, [[straight_lane(300, 600), straight_lane(1000, 700)]])
    image, binary, _ = TuSimpleDataset(tmp_path, PREP)[0]
    brightness = image.mean(0)
    assert brightness[binary == 1].mean() > brightness[binary == 0].mean() + 1.0


def test_augmentation_moves_image_and_lanes_together_and_depends_on_seed_epoch_index(tmp_path):
    write_folder(tmp_path, [[straight_lane(300, 600), straight_lane(1000, 700)]] * 2)
    ds = TuSimpleDataset(tmp_path, PREP, augment=Augmentation(noise_std=0, blur_prob=0, brightness=0, contrast=0,
                                                             saturation=0), seed=3)
    plain = TuSimpleDataset(tmp_path, PREP)
    a = ds[0]
    assert torch.equal(a.instances, ds[0].instances)  # same (seed, epoch, index): same draw
    assert not torch.equal(a.instances, plain[0].instances)  # it did change something
    brightness = a.image.mean(0)
    assert brightness[a.binary == 1].mean() > brightness[a.binary == 0].mean() + 1.0  # lanes still on the paint
    ds.set_epoch(1)
    assert not torch.equal(a.instances, ds[0].instances)
    bottom = a.instances[-3]
    ids = [int(v) for v in torch.unique_consecutive(bottom[bottom > 0])]
    assert ids == sorted(ids)  # still numbered left to right after a possible flip


def test_draw_instances_orders_by_the_lowest_point():
    left_exit = np.array([[40.0, 40.0], [0.0, 70.0]])  # leaves the image on the left, higher up
    right = np.array([[60.0, 40.0], [80.0, 127.0]])
    out = draw_instances([right, left_exit], (128, 128), 1)
    assert out[70, 0] == 1 and out[127, 80] == 2


def test_malformed_line_names_file_and_line(tmp_path):
    path = write_folder(tmp_path, [[straight_lane(300, 600)]] * 2)
    lines = path.read_text().splitlines()
    path.write_text(lines[0] + "\n" + lines[1][:-5] + "\n")
    with pytest.raises(LabelFormatError, match=r"label_data_test.json:2: not valid JSON"):
        TuSimpleDataset(tmp_path, PREP)


def test_lane_length_mismatch_is_reported(tmp_path):
    path = write_folder(tmp_path, [[straight_lane(300, 600)]])
    obj = json.loads(path.read_text())
    obj["lanes"][0] = obj["lanes"][0][:-3]
    path.write_text(json.dumps(obj) + "\n")
    with pytest.raises(LabelFormatError, match=r":1: lane 0 has 53 points but 'h_samples' has 56 rows"):
        TuSimpleDataset(tmp_path, PREP)


def test_missing_image_names_its_path(tmp_path):
    write_folder(tmp_path, [[straight_lane(300, 600)]] * 2)
    (tmp_path / "clips/0/1/20.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"clips/0/1/20.jpg"):
        TuSimpleDataset(tmp_path, PREP)


def test_missing_label_files_and_bad_settings_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no label_data"):
        TuSimpleDataset(tmp_path, PREP)
    with pytest.raises(ValueError, match="lane_thickness"):
        TuSimpleDataset(tmp_path, PREP, lane_thickness=0)
    with pytest.raises(ValueError, match="multiples of 32"):
        Preprocessing(input_width=250, input_height=128)
