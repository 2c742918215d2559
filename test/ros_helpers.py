"""Helpers for tests that run real ROS 2 (rclpy + Fast-DDS): environment, the node's process, a probe node.

Every ROS test keeps DDS traffic on this machine (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST), uses a domain id that
no other test run on the machine holds, writes ROS logs under a temporary folder, and loads the Fast-DDS
shared-memory profile in every process (without it 720p images sent best effort do not arrive). Importing this
module sets these for the test process itself, before any test creates a DDS participant; `ros_env` gives them to
child processes.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from lane_seg_ros.domain import DomainLease, ros_environment
from lane_seg_ros.domain import reserve_domain_id as _reserve
from processes import stop_group

REPO = Path(__file__).resolve().parents[1]
FASTDDS_PROFILE = REPO / "config" / "fastdds_shm.xml"
PARAMS_FILE = REPO / "config" / "lane_seg.yaml"

_LOG_DIR = Path(tempfile.mkdtemp(prefix="lane_seg_ros_log_"))
atexit.register(shutil.rmtree, _LOG_DIR, ignore_errors=True)
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(FASTDDS_PROFILE)
os.environ.setdefault("ROS_LOG_DIR", str(_LOG_DIR))

_held_domains: dict[int, DomainLease] = {}


def reserve_domain_id() -> int:
    """A ROS_DOMAIN_ID that no other test, benchmark or demo on this machine holds (held until released)."""
    lease = _reserve(skip=set(_held_domains))
    _held_domains[lease.domain_id] = lease
    return lease.domain_id


def release_domain_id(domain_id: int) -> None:
    lease = _held_domains.pop(domain_id, None)
    if lease is not None:
        lease.release()


def ros_env(domain_id: int, log_dir: Path) -> dict[str, str]:
    """Environment for a child process that runs ROS: this domain, localhost only, logs in log_dir, the SHM profile."""
    return dict(os.environ, **ros_environment(domain_id, log_dir))


class NodeProcess:
    """`python -m lane_seg_ros.node --ros-args --params-file config/lane_seg.yaml ARGS` in its own process.

    stdout and stderr go to files (NAME.out, NAME.err in `out_dir`), so a chatty node can never block on a full pipe.
    """

    def __init__(self, ros_args: Sequence[str], env: dict[str, str], out_dir: Path, name: str = "lane_seg",
                 params_file: Path | None = PARAMS_FILE) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.stdout_path, self.stderr_path = out_dir / f"{name}.out", out_dir / f"{name}.err"
        command = [sys.executable, "-m", "lane_seg_ros.node", "--ros-args"]
        if params_file is not None:
            command += ["--params-file", str(params_file)]
        self.command = command + list(ros_args)
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(self.command, cwd=REPO, env=env, stdout=out, stderr=err,
                                            start_new_session=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def output(self) -> str:
        return self.stdout() + self.stderr()

    def wait(self, timeout: float) -> int:
        """The exit code; TimeoutError (with the node's output) if it is still running after `timeout` s."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"node still running after {timeout} s; output:\n{self.output()[-3000:]}") from None

    def send(self, sig: int = signal.SIGINT, timeout: float = 20.0) -> int:
        """Send a signal and wait for the exit code."""
        self.process.send_signal(sig)
        return self.wait(timeout)

    def kill(self) -> None:
        """Clean-up: stop the node's process group (SIGINT, then SIGKILL), whether the node still runs or not."""
        stop_group(self.process.pid)
        self.process.wait(10)


class Inbox:
    """Messages that arrived on one subscription, in order; wait for one that matches."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self._arrived = threading.Condition()

    def put(self, msg: Any) -> None:
        with self._arrived:
            self.messages.append(msg)
            self._arrived.notify_all()

    def wait_for(self, predicate: Callable[[Any], bool], timeout: float) -> Any | None:
        """The first message (already here or arriving within `timeout` s) that satisfies predicate, else None."""
        deadline = time.monotonic() + timeout
        checked = 0
        with self._arrived:
            while True:
                for msg in self.messages[checked:]:
                    if predicate(msg):
                        return msg
                checked = len(self.messages)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._arrived.wait(left)

    def with_stamp(self, stamp, timeout: float) -> Any | None:
        return self.wait_for(lambda msg: msg.header.stamp == stamp, timeout)

    def latest(self) -> Any | None:
        with self._arrived:
            return self.messages[-1] if self.messages else None


class Probe:
    """A node in the test process, on its own context and domain, spun by a background thread.

    It does not install rclpy's signal handlers, so Ctrl-C still stops pytest.
    """

    def __init__(self, domain_id: int, name: str = "lane_seg_probe") -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions

        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spinning = True
        self._thread = threading.Thread(target=self._spin, name=f"{name}_spin", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            while self._spinning and self.context.ok():
                self.executor.spin_once(timeout_sec=0.05)
        except ExternalShutdownException:
            pass

    @staticmethod
    def qos(reliable: bool = True, depth: int = 10):
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                          reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT)

    def publisher(self, msg_type, topic: str, depth: int = 2):
        """A reliable publisher (it matches best-effort and reliable subscribers); keep depth small for images."""
        return self.node.create_publisher(msg_type, topic, self.qos(depth=depth))

    def subscribe(self, msg_type, topic: str, depth: int = 50) -> tuple[Inbox, Any]:
        inbox = Inbox()
        return inbox, self.node.create_subscription(msg_type, topic, inbox.put, self.qos(depth=depth))

    @staticmethod
    def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(interval)
        return True

    def set_parameters(self, node_name: str, values: dict[str, Any], timeout: float = 20.0) -> list:
        """Set parameters of a remote node through its set_parameters service; the SetParametersResult of each."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        client = self.node.create_client(SetParameters, f"{node_name}/set_parameters")
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise TimeoutError(f"{node_name}/set_parameters is not available after {timeout} s")
            request = SetParameters.Request(
                parameters=[Parameter(name, value=value).to_parameter_msg() for name, value in values.items()])
            future = client.call_async(request)
            if not self.wait_until(future.done, timeout):
                raise TimeoutError(f"{node_name}/set_parameters did not answer within {timeout} s")
            return list(future.result().results)
        finally:
            self.node.destroy_client(client)

    def get_parameters(self, node_name: str, names: Sequence[str], timeout: float = 20.0) -> dict[str, Any]:
        """{name: value} of a remote node's parameters, through its get_parameters service."""
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python

        client = self.node.create_client(GetParameters, f"{node_name}/get_parameters")
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise TimeoutError(f"{node_name}/get_parameters is not available after {timeout} s")
            future = client.call_async(GetParameters.Request(names=list(names)))
            if not self.wait_until(future.done, timeout):
                raise TimeoutError(f"{node_name}/get_parameters did not answer within {timeout} s")
            return {name: parameter_value_to_python(value) for name, value in zip(names, future.result().values)}
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        self._spinning = False
        self._thread.join(timeout=5)
        self.executor.shutdown(timeout_sec=1)
        self.node.destroy_node()
        self.context.try_shutdown()
