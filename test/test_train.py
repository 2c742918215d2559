"""Trainer: checkpoints hold everything inference needs, --resume continues exactly, bad checkpoints are refused."""

import os
import pickle
import random

import pytest
import torch

from lane_seg_core.checkpoint import CheckpointError, load_checkpoint
from lane_seg_core.cli import main as cli
from lane_seg_core.inference import LaneDetector
from lane_seg_core.train import TrainConfig, Trainer, epoch_batches, warmup_cosine
from tusimple_folders import straight_lane, write_folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    rng = random.Random(0)
    frames = [[straight_lane(150 + k * 350 + rng.randint(-40, 40), 560 + k * 50) for k in range(rng.randint(2, 3))]
              for _ in range(12)]
    write_folder(root, frames)
    return root


def config(data, out, **kw):
    base = dict(data=str(data), val=str(data), out=str(out), epochs=2, batch_size=4, width=0.125, workers=0,
                val_every=4, val_frames=4, progress=False, lr=1e-3, warmup_steps=2)
    base.update(kw)
    return TrainConfig(**base)


def test_checkpoints_hold_model_preprocessing_loss_postprocess_args_metrics_version(data, tmp_path):
    Trainer(config(data, tmp_path, crop_top=0.25, delta_var=0.4, delta_dist=2.0)).run()
    for name in ("last.pt", "best.pt"):
        ckpt = load_checkpoint(tmp_path / name)
        assert ckpt.model_config.width == 0.125
        assert ckpt.preprocessing.crop_top == 0.25 and ckpt.preprocessing.input_size == (256, 128)
        assert ckpt.loss["delta_var"] == 0.4 and ckpt.loss["delta_dist"] == 2.0
        assert ckpt.postprocess.bandwidth == pytest.approx(0.8)  # 2 * delta_var
        assert ckpt.postprocess.lane_threshold in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
        assert ckpt.train_args["batch_size"] == 4 and ckpt.train_args["img_size"] == [256, 128]
        assert "val_accuracy" in ckpt.metrics and ckpt.code_version.startswith("0.")
    assert load_checkpoint(tmp_path / "last.pt").training_state["step"] == 6
    assert load_checkpoint(tmp_path / "best.pt").training_state is None  # inference only: smaller
    detector = LaneDetector.from_checkpoint(tmp_path / "best.pt", device="cpu")
    assert detector.prep.crop_top == 0.25  # the detector reads its settings from the checkpoint
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_resume_continues_exactly(data, tmp_path):
    straight = Trainer(config(data, tmp_path / "a", augment=True))
    straight.run()
    Trainer(config(data, tmp_path / "b", augment=True)).run(max_new_steps=4)  # stops mid-epoch 1 (3 steps each)
    resumed = Trainer(config(data, tmp_path / "b", augment=True, resume=True))
    assert (resumed.step, resumed.epoch, resumed.step_in_epoch) == (4, 1, 1)
    resumed.run()
    for key, value in straight.model.state_dict().items():
        assert torch.allclose(value.float(), resumed.model.state_dict()[key].float(), atol=1e-6), key
    assert straight.scheduler.get_last_lr() == resumed.scheduler.get_last_lr()


def test_resume_refuses_a_different_model_or_missing_state(data, tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume"):
        Trainer(config(data, tmp_path, resume=True))
    Trainer(config(data, tmp_path, max_steps=1, val_frames=1)).run()
    with pytest.raises(CheckpointError, match="width"):
        Trainer(config(data, tmp_path, resume=True, width=0.25))


def test_epoch_batches_depend_only_on_seed_and_epoch_and_split_across_ranks():
    assert epoch_batches(10, 2, 0, 1, 0, 1) == epoch_batches(10, 2, 0, 1, 0, 1)
    assert epoch_batches(10, 2, 0, 1, 0, 1) != epoch_batches(10, 2, 0, 2, 0, 1)
    ranks = [sum(epoch_batches(10, 1, 0, 0, r, 2), []) for r in (0, 1)]
    assert sorted(ranks[0] + ranks[1]) == list(range(10))


def test_warmup_then_cosine_decay():
    f = warmup_cosine(10, 110, floor=0.02)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.51, abs=0.01) and f(110) == pytest.approx(0.02)


def test_truncated_checkpoint_is_a_clear_error(data, tmp_path):
    Trainer(config(data, tmp_path, max_steps=1, val_frames=1)).run()
    blob = (tmp_path / "best.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match=r"cut.pt: not a readable checkpoint"):
        load_checkpoint(tmp_path / "cut.pt")
    assert cli(["eval", "--data", str(data), "--checkpoint", str(tmp_path / "cut.pt")]) == 2


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_pickle_that_would_run_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "payload": _RunsCode()}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()
    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump(_RunsCode(), f)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(tmp_path / "evil.pkl")
    assert not (tmp_path / "pwned").exists()


def test_missing_checkpoint_and_bad_arguments(tmp_path, data, capsys):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(ValueError, match="--batch-size must be >= 1"):
        config(data, tmp_path, batch_size=0)
    with pytest.raises(ValueError, match="--delta-dist"):
        config(data, tmp_path, delta_dist=0.1)
    assert cli(["train", "--data", str(data), "--out", str(tmp_path), "--img-size", "250", "128"]) == 2
    assert "multiples of 32" in capsys.readouterr().err


def test_eval_writes_a_tusimple_submission_that_the_scorer_agrees_with(data, tmp_path, capsys):
    import json

    from lane_seg_core.metrics import evaluate_tusimple

    Trainer(config(data, tmp_path, max_steps=2, val_frames=2)).run()
    pred = tmp_path / "pred.json"
    assert cli(["eval", "--data", str(data), "--checkpoint", str(tmp_path / "best.pt"), "--out", str(pred),
                "--device", "cpu"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    lines = [json.loads(line) for line in pred.read_text().splitlines()]
    gt = [json.loads(line) for line in (data / "label_data_test.json").read_text().splitlines()]
    assert [p["raw_file"] for p in lines] == [g["raw_file"] for g in gt]
    for p, g in zip(lines, gt):
        assert p["h_samples"] == g["h_samples"] and p["run_time"] > 0
        assert all(len(lane) == len(g["h_samples"]) for lane in p["lanes"])
    assert printed == evaluate_tusimple(pred, data / "label_data_test.json").summary()


def test_tensorboard_gets_scalars_and_sample_pictures(data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    Trainer(config(data, tmp_path, max_steps=4, val_every=4, log_every=2)).run()
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0}).Reload()
    assert {"train/loss", "train/seg", "train/var", "train/dist", "train/lr", "val/val_accuracy"} <= set(
        events.Tags()["scalars"])
    assert "val/lanes" in events.Tags()["images"]


def test_mixed_precision_step_is_finite(data, tmp_path):
    trainer = Trainer(config(data, tmp_path, amp=True, val=None))
    figures = trainer.train_step(next(trainer._loader(0)))
    assert all(torch.isfinite(torch.tensor(v)) for v in figures.values())


@pytest.mark.slow
def test_torchrun_ddp_trains_with_the_same_command(data, tmp_path):
    """Two processes (gloo on CPU; NCCL on GPUs) run the ordinary train command and agree on the weights."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "lane_seg_core.cli", "train", "--data", str(data), "--out", str(tmp_path), "--width", "0.125",
           "--batch-size", "2", "--epochs", "1", "--workers", "0", "--device", "cpu", "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("done:") == 1  # only rank 0 reports
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt.training_state["step"] == 12 // (2 * 2)  # each step consumed one batch per process


def test_tune_picks_the_threshold_on_validation_data_and_stores_it(data, tmp_path, capsys):
    Trainer(config(data, tmp_path, max_steps=2, val=None)).run()
    tuned = tmp_path / "tuned.pt"
    assert cli(["tune", "--checkpoint", str(tmp_path / "best.pt"), "--data", str(data), "--out", str(tuned),
                "--thresholds", "0.2", "0.99", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "lane_threshold=0.2" in printed and "lane_threshold=0.99" in printed
    ckpt = load_checkpoint(tuned)
    chosen = float(printed.strip().splitlines()[-1].split("lane_threshold=")[1].split(";")[0])
    assert ckpt.postprocess.lane_threshold == chosen and ckpt.metrics["lane_threshold"] == chosen
    assert ckpt.metrics["tuned_on"] == str(data) and ckpt.training_state is None
