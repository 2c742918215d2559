"""Files lane_seg writes and reads: modes others can read, and refusals that say what the file is."""

import os
import stat

import pytest
import torch

from lane_seg_core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from lane_seg_core.tusimple import LaneRecord, write_records


class Foreign:  # a class a pickled checkpoint could carry
    pass


@pytest.fixture
def umask():
    """Set the process umask for a test; the old one comes back after it."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_predictions_and_checkpoints_get_the_mode_open_would_give(tmp_path, umask):
    from lane_seg_core.checkpoint import Checkpoint
    from lane_seg_core.model import ModelConfig, SegNet
    from lane_seg_core.postprocess import PostprocessConfig
    from lane_seg_core.preprocess import Preprocessing

    config = ModelConfig(width=0.125)
    checkpoint = Checkpoint(config, Preprocessing(), {"delta_var": 0.5}, PostprocessConfig(),
                            SegNet.from_config(config).state_dict())
    record = LaneRecord("clips/0/20.jpg", (160, 170), ((-2, 5),), 1.0)
    for mask, expected in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        umask(mask)
        written = [write_records(tmp_path / f"pred-{mask:o}.json", [record]),
                   save_checkpoint(checkpoint, tmp_path / f"m-{mask:o}.pt")]
        for path in written:
            assert mode(path) == expected, (path.name, oct(mode(path)))
    assert not list(tmp_path.glob(".*.tmp"))
    assert load_checkpoint(tmp_path / "m-22.pt").model_config.width == 0.125


def test_a_torchscript_file_is_named_as_one_and_no_unsafe_load_is_suggested(tmp_path):
    path = tmp_path / "lanes.ts.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: a TorchScript archive") and "export" in message
    assert "corrupt" not in message and "weights_only" not in message


def test_a_pickled_object_is_refused_by_its_class_in_one_plain_sentence(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"format_version": 1, "payload": Foreign()}, path)
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(path)
    message = str(refused.value)
    assert f"{__name__}.Foreign" in message, message
    assert "\x1b" not in message and "\n" not in message and message.endswith(")"), message
    assert "weights_only" not in message and "refused" in message
