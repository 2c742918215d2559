"""Torch CPU threads: half the CPUs by default, everywhere the network runs, and a clear error for a bad count."""

import os

import pytest
import torch

from lane_seg_core.cli import main as cli_main
from lane_seg_core.threads import available_cpus, cpu_threads, use_cpu_threads


@pytest.fixture(autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_the_default_is_half_the_cpus_this_process_may_use_and_never_zero(monkeypatch):
    assert available_cpus() == len(os.sched_getaffinity(0))
    for cpus, expected in ((1, 1), (2, 1), (3, 1), (8, 4), (64, 32)):
        monkeypatch.setattr("lane_seg_core.threads.available_cpus", lambda cpus=cpus: cpus)
        assert cpu_threads(0) == expected
    assert cpu_threads(3) == 3


@pytest.mark.parametrize("bad", [-1, 257, 1.5, True, "2"])
def test_a_bad_thread_count_is_refused_with_the_range(bad):
    with pytest.raises(ValueError, match=r"threads must be an integer in \[0, 256\] \(0 = half the CPUs\)"):
        cpu_threads(bad)


def test_use_sets_torch(monkeypatch):
    monkeypatch.setattr("lane_seg_core.threads.available_cpus", lambda: 6)
    assert use_cpu_threads(0) == 3 and torch.get_num_threads() == 3
    assert use_cpu_threads(1) == 1 and torch.get_num_threads() == 1


@pytest.mark.parametrize("command", ["eval", "predict", "tune"])
def test_commands_that_run_the_network_take_threads(command, tmp_path, capsys, monkeypatch):
    torch.set_num_threads(2)
    arguments = {"eval": ["--data", str(tmp_path)], "predict": [str(tmp_path / "none.jpg"), "--out", str(tmp_path)],
                 "tune": ["--checkpoint", "x.pt", "--data", str(tmp_path), "--out", str(tmp_path / "t.pt")]}[command]
    assert cli_main([command, *arguments, "--threads", "1"]) == 2  # fails after the threads are set: no data
    assert torch.get_num_threads() == 1
    assert cli_main([command, *arguments, "--threads", "-3"]) == 2
    assert "threads must be an integer in [0, 256]" in capsys.readouterr().err
