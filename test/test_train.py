"""Trainer: checkpoints hold everything inference needs, --resume continues exactly, bad checkpoints are refused,
non-finite losses never reach the weights, and SIGINT/SIGTERM stop training and validation at once (DDP too)."""

import copy
import json
import os
import pickle
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from lane_seg_core.checkpoint import CheckpointError, load_checkpoint
from lane_seg_core.cli import main as cli
from lane_seg_core.inference import LaneDetector
from lane_seg_core.loss import LaneSegLossTerms
from lane_seg_core.train import TrainConfig, Trainer, epoch_batches, warmup_cosine
from tusimple_folders import straight_lane, write_folder

RANK_WEIGHTS = Path(__file__).parent / "train_saving_rank_weights.py"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    rng = random.Random(0)
    frames = [[straight_lane(150 + k * 350 + rng.randint(-40, 40), 560 + k * 50) for k in range(rng.randint(2, 3))]
              for _ in range(12)]
    write_folder(root, frames)
    return root


@pytest.fixture(scope="module")
def long_validation(data, tmp_path_factory):
    """1000 validation frames (hard links to the 12 images): a validation that lasts far longer than a stop may."""
    root = tmp_path_factory.mktemp("long_val")
    records = [json.loads(line) for line in (data / "label_data_test.json").read_text().splitlines()]
    lines = []
    for i in range(1000):
        record = dict(records[i % len(records)], raw_file=f"clips/v/{i}/20.jpg")
        (root / record["raw_file"]).parent.mkdir(parents=True)
        os.link(data / records[i % len(records)]["raw_file"], root / record["raw_file"])
        lines.append(json.dumps(record))
    (root / "label_data_val.json").write_text("\n".join(lines) + "\n")
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
    """Stopped mid-epoch by max_new_steps, resumed, stopped by a SIGINT that abandons a step, resumed to the end:
    bit for bit the weights (batch-norm statistics too), optimiser state and schedule of an uninterrupted run."""
    small = dict(augment=True, img_size=(64, 32), val_frames=2)  # 3 steps an epoch, validation at step 4
    straight = Trainer(config(data, tmp_path / "a", **small))
    straight.run()
    Trainer(config(data, tmp_path / "b", **small)).run(max_new_steps=2)
    second = Trainer(config(data, tmp_path / "b", resume=True, **small))
    assert (second.step, second.epoch, second.step_in_epoch) == (2, 0, 2)
    second.model.register_forward_pre_hook(
        lambda module, _: os.kill(os.getpid(), signal.SIGINT) if module.training and second.step == 4 else None)
    second.run()
    assert second.stopped_by == signal.SIGINT and second.step == 4  # after the validation at step 4
    resumed = Trainer(config(data, tmp_path / "b", resume=True, **small))
    assert (resumed.step, resumed.epoch, resumed.step_in_epoch) == (4, 1, 1)
    resumed.run()
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    for index, state in straight.optimizer.state_dict()["state"].items():
        for name, value in state.items():
            assert torch.equal(value, resumed.optimizer.state_dict()["state"][index][name]), (index, name)
    assert straight.scheduler.get_last_lr() == resumed.scheduler.get_last_lr()
    assert straight.metrics == resumed.metrics


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


def _nan_image(batch):
    images, binary, instances = batch
    images = images.clone()
    images[0, :, :4, :4] = float("nan")
    return images, binary, instances


def _finite_loss_nan_gradient(logits, embedding, binary, instances):
    zero = torch.sqrt(logits.float().sum() * 0)  # 0, but its gradient is inf * 0 = nan
    return LaneSegLossTerms(zero, zero, zero, zero, zero)


@pytest.mark.parametrize("amp", [False, True], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("broken", ["loss", "gradient"])
def test_a_non_finite_loss_or_gradient_stops_before_the_weights_change(data, tmp_path, amp, broken):
    trainer = Trainer(config(data, tmp_path, amp=amp, val=None, img_size=(64, 32)))
    batches = trainer._loader(0)
    trainer.train_step(next(batches))  # a good step first, so that the optimiser has state to spoil
    trainer.step = 1
    weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}  # batch-norm statistics too
    optimiser = copy.deepcopy(trainer.optimizer.state_dict())
    batch = next(batches)
    if broken == "loss":
        batch = _nan_image(batch)
    else:
        trainer.criterion = _finite_loss_nan_gradient
    named = r"loss term\(s\) not finite \(.*seg=nan" if broken == "loss" else r"the gradients became non-finite"
    with pytest.raises(FloatingPointError, match=rf"step 2: {named}.*still those of step 1"):
        trainer.train_step(batch)
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, weights[k]), k
    after = trainer.optimizer.state_dict()["state"]
    for index, state in optimiser["state"].items():
        for name, value in state.items():
            assert torch.equal(after[index][name], value), (index, name)


@pytest.mark.parametrize("signals", [1, 2])
def test_a_signal_during_a_step_abandons_it_and_a_second_one_leaves_at_once(data, tmp_path, signals):
    """SIGINT during step 5's forward pass: the step is abandoned, and the model and last.pt are those of step 4,
    batch-norm statistics included; a second SIGINT leaves at once (KeyboardInterrupt), and the last.pt of step 3
    (the end of epoch 1) stays."""
    trainer = Trainer(config(data, tmp_path, val=None, img_size=(64, 32)))  # 3 steps an epoch
    after_step_4 = {}

    def signal_in_step_5(_module, _inputs):
        if trainer.step == 4 and not after_step_4:
            after_step_4.update({k: v.clone() for k, v in trainer.model.state_dict().items()})
            for _ in range(signals):
                os.kill(os.getpid(), signal.SIGINT)

    trainer.model.register_forward_pre_hook(signal_in_step_5)
    handler = signal.getsignal(signal.SIGINT)
    if signals == 1:
        trainer.run()
        assert trainer.stopped_by == signal.SIGINT and trainer.step == 4
    else:
        with pytest.raises(KeyboardInterrupt):
            trainer.run()
    assert signal.getsignal(signal.SIGINT) is handler
    last = load_checkpoint(tmp_path / "last.pt")
    assert last.training_state["step"] == (4 if signals == 1 else 3)
    if signals == 1:
        assert trainer.optimizer.state_dict()["state"][0]["step"] == 4  # AdamW took no fifth step
        for k, v in trainer.model.state_dict().items():
            assert torch.equal(v, after_step_4[k]) and torch.equal(last.state_dict[k], v), k


class _Child:
    """A command in its own process group (session), its stdout and stderr read line by line as they come."""

    def __init__(self, command: list[str]) -> None:
        # This checkout's lane_seg_core first, also for a script outside it (whose folder heads sys.path) and
        # where the virtual environment's editable install points at another checkout.
        path = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(path))
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                     start_new_session=True)
        self.lines: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float = 120) -> str:
        """The first line matching `pattern`; AssertionError with the output if the child ends or time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                raise AssertionError(f"no line matching {pattern!r}; output:\n{self.output()[-3000:]}")
            self.lines.append(line)
            if re.search(pattern, line):
                return line

    def output(self) -> str:
        """Everything read so far, and the rest once the child has closed its output."""
        if self.proc.poll() is not None:
            try:
                while (line := self._queue.get(timeout=10)) is not None:
                    self.lines.append(line)
                self._queue.put(None)
            except queue.Empty:  # a grandchild still holds the pipe open
                pass
        return "".join(self.lines)

    def kill(self, pgids: list[int] = ()) -> None:
        """Kill this group and the other groups (torchrun starts each worker in a session of its own)."""
        for pgid in (self.proc.pid, *pgids):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=30)


def _train_command(data, val, out, *extra):
    return ["--data", str(data), "--val", str(val), "--out", str(out), "--width", "0.125", "--img-size", "64", "32",
            "--batch-size", "2", "--epochs", "20", "--val-every", "2", "--device", "cpu", "--no-progress",
            "--log-every", "1", *extra]


@pytest.mark.slow
@pytest.mark.parametrize("sig, to_group", [(signal.SIGTERM, False), (signal.SIGINT, True)],
                         ids=["SIGTERM-to-the-trainer", "SIGINT-to-the-group"])
def test_a_signal_during_validation_abandons_it_and_exits_within_5_s(data, long_validation, tmp_path, sig, to_group):
    """`lane-seg train` stopped while it validates: exit 128 + signal, last.pt of the last step, nothing left running.

    SIGINT goes to the whole group as Ctrl-C does, data-loader workers included; SIGTERM to the trainer alone.
    """
    child = _Child([sys.executable, "-m", "lane_seg_core.cli", "train",
                    *_train_command(data, long_validation, tmp_path, "--val-frames", "1000", "--workers", "2")])
    try:
        child.wait_for(r"^step 1/")
        child.wait_for(r"^validating at step 2 on 1000 frames")
        sent = time.monotonic()
        (os.killpg if to_group else os.kill)(child.proc.pid, sig)
        code = child.proc.wait(timeout=5)
        print(f"{sig.name}: exit {time.monotonic() - sent:.2f} s after the signal")
        assert code == 128 + sig, child.output()[-3000:]
        with pytest.raises(ProcessLookupError):
            os.killpg(child.proc.pid, 0)  # no data-loader worker left behind
        output = child.output()
        assert f"{sig.name}: validation at step 2 abandoned" in output
        assert f"{sig.name}: stopped after step 2" in output
        last = load_checkpoint(tmp_path / "last.pt")
        assert last.training_state["step"] == 2
        assert "val_accuracy" not in last.metrics  # the abandoned validation's partial figures are not used
        assert not list(tmp_path.glob(".*.tmp"))
    finally:
        child.kill()


def _rank_pids(agent: int, world: int) -> dict[int, int]:
    """torchrun's worker processes by rank (read from their environment), once all have started."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ranks = {}
        try:
            children = map(int, Path(f"/proc/{agent}/task/{agent}/children").read_text().split())
        except OSError:  # torchrun itself has ended
            break
        for pid in children:
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:  # FileNotFoundError, ProcessLookupError: a process that has just ended
                continue
            rank = next((int(e[5:]) for e in environ if e.startswith(b"RANK=")), None)
            if rank is not None:
                ranks[rank] = pid
        if len(ranks) == world:
            return ranks
        time.sleep(0.1)
    raise AssertionError(f"torchrun (pid {agent}) did not start {world} workers (or ended)")


def _torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]


@pytest.mark.slow
@pytest.mark.parametrize("validating", [True, False], ids=["validating", "no-validation"])
def test_torchrun_ddp_trains_with_the_same_command(data, tmp_path, validating):
    """Two processes (gloo on CPU; NCCL on GPUs) run the train command, validate mid-run together (each its share
    of the frames) and end with the same weights, batch-norm statistics included, with or without a validation
    last (each saves its own: train_saving_rank_weights.py)."""
    val = ["--val", str(data), "--val-every", "2", "--val-frames", "5"] if validating else []
    child = _Child(_torchrun(str(RANK_WEIGHTS), "train", "--data", str(data), "--out", str(tmp_path), *val,
                             "--width", "0.125", "--img-size", "64", "32", "--batch-size", "2", "--epochs", "1",
                             "--workers", "0", "--device", "cpu", "--no-progress"))
    groups = []
    try:
        groups = list(_rank_pids(child.proc.pid, 2).values())  # each worker leads a session of its own
        code = child.proc.wait(timeout=240)
        output = child.output()
        assert code == 0, output[-3000:]
    finally:
        child.kill(groups)
    assert output.count("done:") == 1  # only rank 0 reports
    # at step 2 (--val-every) and at the end, step 3
    assert output.count("validating at step") == (2 if validating else 0)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt.training_state["step"] == 12 // (2 * 2)  # each step consumed one batch per process
    # scored over all 5 frames: a missing or repeated one would be an error
    assert ("val_accuracy" in ckpt.metrics) == validating
    weights = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in (0, 1)]
    for key, value in ckpt.state_dict.items():  # parameters and batch-norm statistics alike
        assert torch.equal(weights[0][key], value) and torch.equal(weights[1][key], value), key


@pytest.mark.slow
def test_under_ddp_a_signal_to_one_rank_stops_every_rank_during_validation(data, long_validation, tmp_path):
    """SIGTERM to rank 1 alone while both validate: rank 0 hears of it at the next batch, and both stop at once."""
    child = _Child(_torchrun("-m", "lane_seg_core.cli", "train",
                             *_train_command(data, long_validation, tmp_path, "--val-frames", "1000", "--workers", "1")))
    groups = []
    try:
        ranks = _rank_pids(child.proc.pid, 2)
        groups = list(ranks.values())  # each worker leads a session of its own
        child.wait_for(r"^validating at step 2 on 1000 frames")
        sent = time.monotonic()
        os.kill(ranks[1], signal.SIGTERM)
        child.wait_for(r"^SIGTERM: validation at step 2 abandoned", timeout=5)  # printed by rank 0
        child.wait_for(r"^SIGTERM: stopped after step 2", timeout=5)
        child.proc.wait(timeout=30)
        print(f"torchrun exit {time.monotonic() - sent:.2f} s after the signal")
        for pgid in groups:
            with pytest.raises(ProcessLookupError):
                os.killpg(pgid, 0)  # neither rank nor its data-loader worker is left
    finally:
        child.kill(groups)
    assert re.search(r"exitcode\s*:\s*143", child.output())  # the rank that got the signal reports it
    assert load_checkpoint(tmp_path / "last.pt").training_state["step"] == 2


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


def test_init_fine_tunes_a_trained_model_with_its_settings_and_a_fresh_optimiser(data, tmp_path, capsys):
    Trainer(config(data, tmp_path / "first", crop_top=0.25, delta_var=0.4, delta_dist=2.0, img_size=(128, 64),
                   max_steps=2, val_frames=2)).run()
    first = load_checkpoint(tmp_path / "first" / "last.pt")
    # the command's own --width / --img-size / --crop-top / loss settings give way to the checkpoint's
    tuned = Trainer(config(data, tmp_path / "tuned", init=str(tmp_path / "first" / "last.pt"), width=1.0,
                           max_steps=2, val_frames=2))
    assert "--width 1.0 -> 0.125" in capsys.readouterr().err
    assert tuned.cfg.width == 0.125 and tuned.cfg.img_size == (128, 64) and tuned.cfg.crop_top == 0.25
    assert tuned.criterion.disc.delta_var == 0.4 and tuned.post.bandwidth == pytest.approx(0.8)
    assert tuned.step == 0 and not tuned.optimizer.state_dict()["state"]  # a fresh optimiser and schedule
    for key, value in first.state_dict.items():
        assert torch.equal(value, tuned.model.state_dict()[key]), key
    tuned.run(max_new_steps=1)
    resumed = Trainer(config(data, tmp_path / "tuned", init=str(tmp_path / "first" / "last.pt"), resume=True,
                             max_steps=2, val_frames=2))
    assert resumed.step == 1  # --resume continues the fine-tuning, not the checkpoint it started from
    resumed.run()
    saved = load_checkpoint(tmp_path / "tuned" / "last.pt")
    assert saved.train_args["init"].endswith("last.pt") and saved.preprocessing.input_size == (128, 64)
    assert any(not torch.equal(v, first.state_dict[k]) for k, v in saved.state_dict.items())


def test_init_refuses_a_missing_checkpoint_and_pretrained_weights_with_it(data, tmp_path):
    with pytest.raises(FileNotFoundError, match="--init: checkpoint not found"):
        Trainer(config(data, tmp_path, init=str(tmp_path / "nope.pt")))
    with pytest.raises(ValueError, match="--init and --pretrained"):
        config(data, tmp_path, init="a.pt", pretrained="vgg.pth")
