"""Building the package: the messages into the environment again (make after a msg/ change), and with colcon."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import processes

REPO = Path(__file__).resolve().parent.parent


def test_rebuilding_the_messages_into_a_built_environment_succeeds():
    pytest.importorskip("lane_seg.msg")  # built once by make: this is the second build
    result = subprocess.run(["bash", str(REPO / "tools" / "build_ros_into_venv.sh"), sys.prefix],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "built lane_seg/msg (Lane, LaneArray)" in result.stdout


# --------------------------------------------------------------------------------------------------
# colcon build, as on a vehicle: the package built in a workspace of its own, then used from its install
# --------------------------------------------------------------------------------------------------

COLCON = Path(sys.prefix) / "colcon" / "bin" / "colcon"  # make test installs colcon into an environment of its own
NOT_COPIED = {".git", ".venv", "build", "install", "log", "out", "runs", "data", ".pytest_cache", ".ruff_cache"}
SHARED_FILES = ("launch/lane_seg.launch.py", "config/lane_seg.yaml", "config/fastdds_shm.xml", "rviz/lane_seg.rviz",
                "package.xml")
LAUNCH_START_S = 120.0


def _source_tree(directory: str, names: list[str]) -> set[str]:
    """shutil.copytree's ignore: what a clone has, without this checkout's build outputs and caches."""
    ignored = {n for n in names if n == "__pycache__" or n.endswith(".pyc")}
    return ignored | (NOT_COPIED & set(names) if Path(directory) == REPO else set())


@pytest.fixture(scope="module")
def colcon_install(tmp_path_factory) -> Path:
    """`colcon build` of a copy of this repository in src/ of a new workspace; the workspace (with install/)."""
    if not COLCON.exists():
        pytest.skip(f"colcon is not installed ({COLCON}): make test installs it")
    workspace = tmp_path_factory.mktemp("colcon_ws")
    shutil.copytree(REPO, workspace / "src" / "lane_seg", ignore=_source_tree)
    # As on a vehicle: the ROS installation (here the wheels' prefix, this environment) sourced, the venv active.
    env = dict(os.environ, AMENT_PREFIX_PATH=sys.prefix, CMAKE_PREFIX_PATH=sys.prefix, VIRTUAL_ENV=sys.prefix,
               PATH=os.pathsep.join([str(Path(sys.prefix) / "bin"), os.environ.get("PATH", "")]),
               COLCON_HOME=str(workspace / "colcon_home"), MAKEFLAGS="-j2")
    result = processes.run([str(COLCON), "--log-base", "log", "build", "--event-handlers", "console_direct-"],
                           timeout=600, cwd=workspace, env=env)
    log = workspace / "log" / "latest_build" / "lane_seg" / "stdout_stderr.log"
    assert result.returncode == 0, (result.stdout[-2000:] + result.stderr[-2000:] +
                                    (log.read_text(errors="replace")[-3000:] if log.exists() else ""))
    return workspace


def sourced_env(workspace: Path) -> dict[str, str]:
    """The environment after `source install/setup.bash` (what a vehicle's shell has before `ros2 run`)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["AMENT_PREFIX_PATH"] = sys.prefix
    result = processes.run(["bash", "-c", "source install/setup.bash && env -0"], timeout=60, cwd=workspace, env=env)
    assert result.returncode == 0, result.stderr
    return dict(item.split("=", 1) for item in result.stdout.split("\0") if "=" in item)


def test_colcon_installs_the_executables_and_the_launch_config_and_rviz_files(colcon_install):
    prefix = colcon_install / "install" / "lane_seg"
    for name in ("lane_seg_node", "lane-seg"):
        executable = prefix / "lib" / "lane_seg" / name  # where ros2 run and launch_ros look
        assert executable.is_file() and os.access(executable, os.X_OK), f"{executable} is missing or not executable"
        interpreter = executable.read_text().splitlines()[0].removeprefix("#!")
        # the active environment's Python, for which the messages were built (not `python3` from PATH at run time)
        assert Path(interpreter).parent == Path(sys.prefix) / "bin" and os.access(interpreter, os.X_OK), interpreter
        assert executable.read_text().splitlines()[1:] == (REPO / "scripts" / name).read_text().splitlines()[1:]
    for path in SHARED_FILES:
        installed = prefix / "share" / "lane_seg" / path
        assert installed.is_file() and installed.read_bytes() == (REPO / path).read_bytes(), path
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "lane_seg").is_file()


def test_the_messages_and_python_packages_import_from_the_colcon_install(colcon_install):
    code = ("import json, lane_seg.msg, lane_seg_core, lane_seg_ros; from lane_seg.msg import Lane, LaneArray; "
            "print(json.dumps([m.__file__ for m in (lane_seg.msg, lane_seg_core, lane_seg_ros)]))")
    result = processes.run([sys.executable, "-c", code], timeout=120, cwd=colcon_install,
                           env=sourced_env(colcon_install))
    assert result.returncode == 0, result.stderr[-3000:]
    python = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    site_packages = colcon_install / "install" / "lane_seg" / "lib" / python / "site-packages"
    for module_file in json.loads(result.stdout.strip().splitlines()[-1]):
        assert Path(module_file).is_relative_to(site_packages), module_file


def test_the_launch_file_runs_from_the_colcon_install_and_stops_on_sigint(colcon_install):
    pytest.importorskip("launch_ros", reason="launch_ros is not installed: make test installs it from "
                                             "ROS_LAUNCH_VENDOR (../shared/vendor/ros2-launch) when that folder exists")
    from processes import Spawned, group_alive, group_members
    from ros_helpers import Probe, release_domain_id, reserve_domain_id, ros_environment

    prefix = colcon_install / "install" / "lane_seg"
    domain = reserve_domain_id()
    env = dict(sourced_env(colcon_install), **ros_environment(domain, colcon_install / "ros_log"))
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE")  # the launch file sets the installed profile
    launch = Spawned([sys.executable, str(REPO / "test" / "launch_file.py"),
                      str(prefix / "share" / "lane_seg" / "launch" / "lane_seg.launch.py"), "device:=cpu"],
                     log=colcon_install / "launch.log", env=env, cwd=colcon_install)
    probe = Probe(domain, "test_build_probe")
    try:
        def node_ready() -> bool:
            try:
                subscriptions = probe.node.get_subscriber_names_and_types_by_node("lane_seg", "/")
            except Exception:  # not discovered yet
                return not launch.alive()
            return not launch.alive() or "/camera/image_raw" in {topic for topic, _ in subscriptions}

        assert probe.wait_until(node_ready, LAUNCH_START_S, interval=0.2) and launch.alive(), launch.output()[-3000:]
        started = [argv for argv in group_members(launch.pid).values() if "lane_seg_node" in " ".join(argv[:2])]
        assert [argv[1] for argv in started] == [str(prefix / "lib" / "lane_seg" / "lane_seg_node")], started
        launch.signal(signal.SIGINT)
        assert launch.wait(60.0) == 0, launch.output()[-3000:]
        assert not group_alive(launch.pid), group_members(launch.pid)
    finally:
        probe.close()
        launch.stop()
        release_domain_id(domain)
