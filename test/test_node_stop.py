"""LaneSegNode.stop(): the node is destroyed only after the frame in hand is finished, however long it takes."""

import threading
import time

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("lane_seg.msg", reason="lane_seg messages are not built: make venv")

import rclpy  # noqa: E402
from rclpy.context import Context  # noqa: E402

from lane_seg_ros.node import STOP_NOTICE_S, LaneSegNode  # noqa: E402
from ros_helpers import release_domain_id, reserve_domain_id  # noqa: E402


@pytest.fixture
def node():
    domain = reserve_domain_id()
    context = Context()
    rclpy.init(context=context, domain_id=domain)
    node = LaneSegNode(context=context)
    try:
        yield node
    finally:
        node.destroy_node()
        context.try_shutdown()
        release_domain_id(domain)


def test_stop_waits_for_a_long_forward_pass_and_says_so(node, capfd):
    in_hand, finished = threading.Event(), threading.Event()

    def forward_pass() -> None:  # the worker with a frame whose forward pass outlasts the notice
        in_hand.wait()
        time.sleep(STOP_NOTICE_S + 1.0)
        finished.set()

    node._worker = threading.Thread(target=forward_pass, daemon=True)
    node._worker.start()
    in_hand.set()
    started = time.monotonic()
    node.stop()
    waited = time.monotonic() - started
    assert finished.is_set(), "stop() returned while the frame in hand was still being processed"
    assert waited >= STOP_NOTICE_S + 0.5 and not node._worker.is_alive()
    assert "stopping: waiting for the frame in hand to finish" in capfd.readouterr().err


def test_stop_of_an_idle_worker_returns_at_once(node):
    node._worker = threading.Thread(target=node._work, daemon=True)
    node._worker.start()
    started = time.monotonic()
    node.stop()
    assert not node._worker.is_alive() and time.monotonic() - started < STOP_NOTICE_S
