"""launch/lane_seg.launch.py, rviz/lane_seg.rviz, config/lane_seg.yaml and the install rules agree with the node.

Three layers, so that a checkout without ROS 2's `launch` / `launch_ros` still checks what it can:

* always, statically: the launch file parsed with `ast` (documented arguments, the node it starts, the
  files it refers to), CMakeLists.txt, setup.py, package.xml and the rviz file;
* always, against the real node: scripts/lane_seg_node is started as its own process with the shipped
  config/lane_seg.yaml (and a second one with use_compressed:=true), and its declared parameters and their
  types (rcl_interfaces ListParameters / DescribeParameters) and its publishers / subscriptions (the ROS graph)
  are compared with the YAML, the launch file and the rviz file;
* where `launch_ros` imports (make test installs the upstream launch / launch_ros from ROS_LAUNCH_VENDOR,
  ../shared/vendor/ros2-launch): the launch file under the real launch.LaunchService, run once for the module
  like `ros2 launch` with a params file and arguments; a probe checks what it started (the installed executable,
  no rviz2, the remapped topics, lanes for a frame, the parameters from the file and the arguments, the
  shared-memory profile), and SIGINT to the launch stops everything. use_rviz:=true without rviz2 stops before
  anything starts; the rviz2 Node it would start is checked as launch_ros builds it.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import signal
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

from processes import Spawned, group_alive, group_members

yaml = pytest.importorskip("yaml")  # PyYAML comes with rclpy

REPO = Path(__file__).resolve().parent.parent
LAUNCH_FILE = REPO / "launch" / "lane_seg.launch.py"
RVIZ_FILE = REPO / "rviz" / "lane_seg.rviz"
CONFIG_FILE = REPO / "config" / "lane_seg.yaml"
NODE_SCRIPT = REPO / "scripts" / "lane_seg_node"

PACKAGE, EXECUTABLE, NODE_NAME = "lane_seg", "lane_seg_node", "lane_seg"
REQUIRED_ARGUMENTS = {"image_topic", "camera_info_topic", "checkpoint", "device", "params_file", "namespace",
                      "use_rviz", "use_compressed", "fastdds_profile"}
REFERENCED_FILES = {"config/lane_seg.yaml", "config/fastdds_shm.xml", "rviz/lane_seg.rviz"}
# Parameters every rclpy node has (or may get from ROS itself), not the node's own settings.
ROS_OWN_PARAMETERS = {"use_sim_time", "start_type_description_service"}
ROS_OWN_PREFIXES = ("qos_overrides.",)
ROS_OWN_TOPICS = {"/rosout", "/parameter_events"}
NODE_START_TIMEOUT_S = 120.0  # the node loads torch and the model; a loaded 2-core machine is slow


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def launch_tree() -> ast.Module:
    return ast.parse(LAUNCH_FILE.read_text(), filename=str(LAUNCH_FILE))


def module_constants(tree: ast.Module) -> dict[str, object]:
    """Module-level `NAME = <literal>` assignments of the launch file."""
    constants = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                constants[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return constants


def calls_named(tree: ast.AST, name: str) -> list[ast.Call]:
    """Every call of `name(...)` or `<something>.name(...)`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if called == name:
                found.append(node)
    return found


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def resolve_literal(expr: ast.expr | None, constants: dict[str, object]) -> object:
    """A literal, or a module constant's value, or None when it is computed."""
    if expr is None:
        return None
    if isinstance(expr, ast.Name):
        return constants.get(expr.id)
    try:
        return ast.literal_eval(expr)
    except ValueError:
        return None


def declared_arguments(tree: ast.Module) -> dict[str, ast.Call]:
    arguments = {}
    for call in calls_named(tree, "DeclareLaunchArgument"):
        assert call.args and isinstance(call.args[0], ast.Constant), \
            f"line {call.lineno}: DeclareLaunchArgument's name must be a string literal"
        arguments[call.args[0].value] = call
    return arguments


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    """Nested YAML parameters -> {'ground.height': 1.45, ...} (ROS's dotted parameter names)."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def config_parameters(text: str | None = None) -> dict[str, object]:
    """The parameters config/lane_seg.yaml gives the node (under `lane_seg` or the `/**` wildcard)."""
    document = yaml.safe_load(CONFIG_FILE.read_text() if text is None else text)
    assert isinstance(document, dict) and document, f"{CONFIG_FILE} is empty or not a mapping"
    sections = {k: v for k, v in document.items() if k in (NODE_NAME, f"/{NODE_NAME}", "/**")}
    assert sections, f"{CONFIG_FILE}: no section for the node (expected '{NODE_NAME}:' or '/**:'), got {list(document)}"
    parameters = {}
    for key, section in sections.items():
        assert isinstance(section, dict) and "ros__parameters" in section, f"{CONFIG_FILE}: '{key}' has no ros__parameters"
        parameters.update(flatten(section["ros__parameters"]))
    return parameters


def documented_parameters(leaf_names: set[str]) -> dict[str, object]:
    """Parameters the YAML sets plus those it documents as a commented-out `# name: value` line.

    Some parameters are deliberately left unset in the shipped file (the post-processing settings default to
    the checkpoint's values; ground.homography / ground.intrinsics default to empty); the file shows them
    commented out, at the indentation of their section, so that uncommenting the line sets them. Only lines
    whose key is one of `leaf_names` (the last part of a declared name) are read, not prose comments.
    """
    pattern = re.compile(r"^(\s*)#\s?(\w+):(\s.*)?$")

    def uncomment(line: str) -> str:
        match = pattern.match(line)
        if match and match.group(2) in leaf_names:
            return f"{match.group(1)}{match.group(2)}:{match.group(3) or ''}"
        return line

    text = "\n".join(uncomment(line) for line in CONFIG_FILE.read_text().splitlines())
    return config_parameters(text)


# rcl_interfaces/msg/ParameterType -> the Python type its YAML value must parse to (1 is an int, 1.0 a float)
PARAMETER_TYPES = {1: "bool", 2: "int", 3: "float", 4: "str", 7: "int list", 8: "float list", 9: "str list"}


def yaml_type(value: object) -> str:
    if isinstance(value, list):
        kinds = {yaml_type(v) for v in value}
        return f"{kinds.pop()} list" if len(kinds) == 1 else "mixed list"
    return {bool: "bool", int: "int", float: "float", str: "str"}.get(type(value), type(value).__name__)


def rviz_topics(config: dict) -> dict[str, str]:
    """{display name: topic} of every display (Topic: {Value: ...}) in an rviz2 config, groups included."""
    topics = {}

    def visit(displays):
        for display in displays or []:
            topic = display.get("Topic")
            if isinstance(topic, dict) and topic.get("Value"):
                topics[display.get("Name", display["Class"])] = topic["Value"]
            visit(display.get("Displays"))

    visit(config["Visualization Manager"]["Displays"])
    return topics


# --------------------------------------------------------------------------------------------------
# The real node: its parameters and topics
# --------------------------------------------------------------------------------------------------


@dataclass
class NodeInterface:
    parameters: dict[str, int]  # declared by the node itself (ROS's own ones removed) -> rcl_interfaces ParameterType
    publishers: set[str]  # topics it publishes (ROS's own ones removed), with the default config
    subscriptions: set[str]  # topics it subscribes to with the default config
    compressed_subscriptions: set[str]  # ... with use_compressed:=true


def _start_node(extra_args: list[str], env: dict[str, str], log: Path) -> Spawned:
    command = [sys.executable, str(NODE_SCRIPT), "--ros-args", "--params-file", str(CONFIG_FILE), *extra_args]
    return Spawned(command, log=log, env=env, cwd=REPO)


@pytest.fixture(scope="module")
def node_interface(tmp_path_factory) -> NodeInterface:
    """Start the node (default config, and a second one with use_compressed:=true) and ask ROS what it declares."""
    if not NODE_SCRIPT.exists() or not (REPO / "lane_seg_ros" / "node.py").exists():
        pytest.fail("the node (scripts/lane_seg_node, lane_seg_ros/node.py) is missing")
    rclpy = pytest.importorskip("rclpy")
    from rcl_interfaces.srv import DescribeParameters, ListParameters
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    # importing ros_helpers sets this process's ROS environment (localhost discovery, SHM profile, log folder)
    from ros_helpers import release_domain_id, reserve_domain_id, ros_env

    tmp = tmp_path_factory.mktemp("node")
    domain = reserve_domain_id()  # a domain no other test run on this machine holds
    env = ros_env(domain, tmp / "ros_log")
    processes: dict[str, Spawned] = {}
    context = rclpy.Context()
    try:
        processes["default"] = _start_node([], env, tmp / "node.log")
        processes["compressed"] = _start_node(["-p", "use_compressed:=true", "-r", f"__node:={NODE_NAME}_compressed"],
                                              env, tmp / "node_compressed.log")
        rclpy.init(context=context, domain_id=domain, signal_handler_options=SignalHandlerOptions.NO)
        probe = rclpy.create_node("test_launch_probe", context=context)
        executor = SingleThreadedExecutor(context=context)  # not the global one: it belongs to the default context
        executor.add_node(probe)
        try:
            def fail(why: str):
                logs = "\n".join(f"--- {name}:\n" + (tmp / f).read_text(errors="replace")[-3000:]
                                 for name, f in (("default", "node.log"), ("compressed", "node_compressed.log")))
                pytest.fail(f"{why}\n{logs}")

            deadline = time.monotonic() + NODE_START_TIMEOUT_S
            client = probe.create_client(ListParameters, f"/{NODE_NAME}/list_parameters")
            while not client.wait_for_service(timeout_sec=0.5):
                for name, process in processes.items():
                    if not process.alive():
                        fail(f"the node ({name}) exited with code {process.process.returncode} during start-up")
                if time.monotonic() > deadline:
                    fail(f"/{NODE_NAME}/list_parameters did not appear within {NODE_START_TIMEOUT_S:.0f} s")
            # The node answers once it has started (declared everything, loaded the model) and spins.
            future = client.call_async(ListParameters.Request(prefixes=[], depth=ListParameters.Request.DEPTH_RECURSIVE))
            executor.spin_until_future_complete(future, timeout_sec=NODE_START_TIMEOUT_S)
            if future.result() is None:
                fail("ListParameters did not answer")
            names = [n for n in future.result().result.names
                     if n not in ROS_OWN_PARAMETERS and not n.startswith(ROS_OWN_PREFIXES)]
            describe = probe.create_client(DescribeParameters, f"/{NODE_NAME}/describe_parameters")
            future = describe.call_async(DescribeParameters.Request(names=names))
            executor.spin_until_future_complete(future, timeout_sec=30)
            if future.result() is None:
                fail("DescribeParameters did not answer")
            declared = {d.name: d.type for d in future.result().descriptors}

            def graph(node_name: str, kind: str) -> set[str]:
                query = getattr(probe, f"get_{kind}_names_and_types_by_node")
                return {topic for topic, _ in query(node_name, "/")} - ROS_OWN_TOPICS

            # The graph fills in through discovery: wait until both nodes show their outputs and inputs.
            while True:
                try:
                    publishers = graph(NODE_NAME, "publisher")
                    subscriptions = graph(NODE_NAME, "subscriber")
                    compressed = graph(f"{NODE_NAME}_compressed", "subscriber")
                except Exception:  # the node is not in the graph yet (rclpy raises NodeNameNonExistentError)
                    publishers, subscriptions, compressed = set(), set(), set()
                if "/lanes" in publishers and subscriptions and compressed:
                    break
                if time.monotonic() > deadline:
                    fail(f"the nodes' topics did not show up: publishers {publishers}, subscriptions {subscriptions}, "
                         f"compressed-mode subscriptions {compressed}")
                executor.spin_once(timeout_sec=0.2)
        finally:
            executor.shutdown()
            probe.destroy_node()
    finally:
        context.try_shutdown()
        for process in processes.values():
            process.stop()
        release_domain_id(domain)
    return NodeInterface(declared, publishers, subscriptions, compressed)


def test_every_parameter_in_the_config_is_declared_by_the_node(node_interface):
    in_yaml = set(config_parameters())
    assert in_yaml - set(node_interface.parameters) == set(), \
        "config/lane_seg.yaml sets parameters the node does not declare (they would be ignored)"


def test_the_config_sets_or_documents_every_declared_parameter_with_its_type(node_interface):
    declared = node_interface.parameters
    documented = documented_parameters({name.rsplit(".", 1)[-1] for name in declared})
    assert set(declared) - set(documented) == set(), \
        "parameters the node declares that config/lane_seg.yaml neither sets nor shows commented out"
    assert set(documented) - set(declared) == set(), "config/lane_seg.yaml documents parameters the node does not declare"
    wrong = {name: (yaml_type(value), PARAMETER_TYPES.get(declared[name], declared[name]))
             for name, value in documented.items()
             if not (declared[name] in (7, 8, 9) and value == []) and
             yaml_type(value) != PARAMETER_TYPES.get(declared[name])}
    assert not wrong, f"YAML value types differ from the declared ones (yaml, declared): {wrong}"


def test_every_parameter_the_launch_file_passes_is_declared_by_the_node(node_interface):
    tree = launch_tree()
    constants = module_constants(tree)
    passed = set(constants.get("PARAMETER_OVERRIDES", {}))
    for call in calls_named(tree, "Node"):
        if resolve_literal(keyword(call, "package"), constants) != PACKAGE:
            continue
        parameters = keyword(call, "parameters")
        for element in ast.walk(parameters) if parameters is not None else []:
            if isinstance(element, ast.Dict):
                passed |= {resolve_literal(k, constants) for k in element.keys}
    assert {"checkpoint", "device", "use_compressed"} <= passed, passed
    assert passed - set(node_interface.parameters) == set(), "the launch file passes parameters the node does not declare"
    # ...with the node's types (a string where the node declared a bool stops it at start-up)
    overrides = constants["PARAMETER_OVERRIDES"]
    assert {name: PARAMETER_TYPES[node_interface.parameters[name]] for name in overrides} == overrides


def node_remapped_names(tree: ast.Module) -> set[str]:
    """The node's own input names the launch file remaps: ("image", ...) pairs in remappings=[...] of its Node."""
    constants = module_constants(tree)
    names = set()
    for call in calls_named(tree, "Node"):
        if resolve_literal(keyword(call, "package"), constants) == PACKAGE:
            remappings = keyword(call, "remappings")
            assert isinstance(remappings, ast.List), f"line {call.lineno}: remappings must be a list of pairs"
            for pair in remappings.elts:
                assert isinstance(pair, ast.Tuple) and isinstance(pair.elts[0], ast.Constant), \
                    f"line {pair.lineno}: a remapping's first element (the node's name) must be a string literal"
                names.add(pair.elts[0].value)
    return names


def test_the_launch_remappings_name_topics_the_node_uses(node_interface):
    remapped = node_remapped_names(launch_tree())
    used = {t.lstrip("/") for t in node_interface.subscriptions | node_interface.compressed_subscriptions}
    assert remapped - used == set(), f"remapped names the node never subscribes to (used: {sorted(used)})"
    assert {"image", "image/compressed", "camera_info"} <= remapped


def test_the_node_publishes_its_documented_outputs(node_interface):
    assert {"/lanes", "/lanes/instance_mask", "/lanes/markers", "/lanes/overlay", "/diagnostics"} \
        <= node_interface.publishers, node_interface.publishers
    assert "/image" in node_interface.subscriptions and "/image/compressed" in node_interface.compressed_subscriptions


def test_the_rviz_topics_are_the_node_outputs_and_the_default_camera(node_interface):
    topics = set(rviz_topics(yaml.safe_load(RVIZ_FILE.read_text())).values())
    default_image_topic = ast.literal_eval(keyword(declared_arguments(launch_tree())["image_topic"], "default_value"))
    # the node in the launch file's default namespace: its relative outputs are the root-level names
    assert topics - node_interface.publishers - {default_image_topic} == set(), \
        f"rviz shows topics nobody publishes by default (node publishes {sorted(node_interface.publishers)})"
    assert {"/lanes/overlay", "/lanes/markers", default_image_topic} <= topics


# --------------------------------------------------------------------------------------------------
# Static checks: launch file, rviz file, package files
# --------------------------------------------------------------------------------------------------


def test_every_launch_argument_is_documented_and_the_documented_ones_exist():
    arguments = declared_arguments(launch_tree())
    assert REQUIRED_ARGUMENTS <= set(arguments), f"missing: {REQUIRED_ARGUMENTS - set(arguments)}"
    for name, call in arguments.items():
        description = keyword(call, "description")
        assert description is not None, f"launch argument '{name}' has no description"
        text = ast.literal_eval(description)  # a string literal, so that --show-args can print it
        assert isinstance(text, str) and len(text.split()) >= 4, f"launch argument '{name}': description too short"
        assert keyword(call, "default_value") is not None, f"launch argument '{name}' has no default"


def test_launch_argument_defaults():
    arguments = declared_arguments(launch_tree())

    def default(name):
        return ast.literal_eval(keyword(arguments[name], "default_value"))

    assert default("image_topic") == "/camera/image_raw"
    assert default("use_rviz") == "false"
    assert default("namespace") == ""
    # empty = keep the params file's value (the YAML is the source of truth for the node's settings)
    assert default("checkpoint") == default("device") == default("use_compressed") == ""
    # params_file / fastdds_profile default to files in the package's share directory
    for name, path in (("params_file", "config/lane_seg.yaml"), ("fastdds_profile", "config/fastdds_shm.xml")):
        call = keyword(arguments[name], "default_value")
        assert isinstance(call, ast.Call), name
        assert [a.value for a in call.args if isinstance(a, ast.Constant)] == path.split("/"), name


def test_the_launch_file_starts_the_package_executable_under_the_node_name():
    tree = launch_tree()
    constants = module_constants(tree)
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
    nodes = [(resolve_literal(keyword(c, "package"), constants), resolve_literal(keyword(c, "executable"), constants),
              resolve_literal(keyword(c, "name"), constants)) for c in calls_named(tree, "Node")]
    assert (PACKAGE, EXECUTABLE, NODE_NAME) in nodes, nodes
    assert ("rviz2", "rviz2", "lane_seg_rviz") in nodes, nodes


def test_package_and_executable_names_match_cmake_setup_py_and_package_xml():
    cmake = (REPO / "CMakeLists.txt").read_text()
    assert re.search(rf"^project\({PACKAGE}\)", cmake, re.M)
    assert re.search(rf"<name>{PACKAGE}</name>", (REPO / "package.xml").read_text())
    # scripts/lane_seg_node is installed to lib/lane_seg (where ros2 run and launch_ros look) with its shebang set
    programs = re.search(r"install\(PROGRAMS ([^)]*?)\s+DESTINATION lib/\$\{PROJECT_NAME\}\)", cmake)
    assert programs and EXECUTABLE in {Path(p).name for p in programs.group(1).split()}, \
        f"{EXECUTABLE} is not installed to lib/{PACKAGE}"
    assert re.search(rf"foreach\(script [^)]*\b{EXECUTABLE}\b", cmake), "scripts/lane_seg_node is not the one installed"
    assert NODE_SCRIPT.exists() and "from lane_seg_ros.node import main" in NODE_SCRIPT.read_text()
    assert os.access(NODE_SCRIPT, os.X_OK), "scripts/lane_seg_node is not executable"

    setup = ast.parse((REPO / "setup.py").read_text())
    entry_points = next(resolve_literal(keyword(c, "entry_points"), {}) for c in calls_named(setup, "setup"))
    scripts = dict(re.split(r"\s*=\s*", s, maxsplit=1) for s in entry_points["console_scripts"])
    assert scripts.get(EXECUTABLE) == "lane_seg_ros.node:main", scripts

    node_source = REPO / "lane_seg_ros" / "node.py"
    if node_source.exists():  # the node is written separately; its main() is what both entry points call
        assert any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in ast.parse(node_source.read_text()).body)


def test_the_files_the_launch_file_uses_exist_and_are_installed():
    referenced = set()
    for call in calls_named(launch_tree(), "join"):  # os.path.join(share, "config", "lane_seg.yaml")
        parts = [a.value for a in call.args[1:] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if parts:
            referenced.add("/".join(parts))
    assert REFERENCED_FILES <= referenced, referenced
    installed = re.search(r"install\(DIRECTORY ([^)]*?)\s+DESTINATION share/\$\{PROJECT_NAME\}", 
                          (REPO / "CMakeLists.txt").read_text())
    assert installed, "CMakeLists.txt installs no directory into share/lane_seg"
    directories = installed.group(1).split()
    for path in sorted(referenced):
        assert path.split("/")[0] in directories, f"{path} is not installed by CMakeLists.txt ({directories})"
        assert (REPO / path).is_file(), f"the launch file refers to {path}, which does not exist"
    assert "launch" in directories


def test_the_rviz_file_is_an_rviz2_config():
    config = yaml.safe_load(RVIZ_FILE.read_text())
    manager = config["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == "base_footprint"
    classes = [d["Class"] for d in manager["Displays"]]
    assert classes.count("rviz_default_plugins/Image") == 2 and "rviz_default_plugins/MarkerArray" in classes
    for display in manager["Displays"]:
        assert display["Class"].startswith(("rviz_default_plugins/", "rviz_common/")), display["Class"]
    assert all(p["Class"].startswith("rviz_common/") for p in config["Panels"])
    topics = rviz_topics(config)
    assert topics == {"Camera image": "/camera/image_raw", "Lane overlay": "/lanes/overlay",
                      "Lane markers": "/lanes/markers"}, topics
    # the launch file remaps rviz2 from exactly these topics
    assert set(module_constants(launch_tree())["RVIZ_DEFAULT_TOPICS"].values()) == set(topics.values())


# --------------------------------------------------------------------------------------------------
# The real launch / launch_ros: the launch file run as `ros2 launch` would
# --------------------------------------------------------------------------------------------------

LAUNCHER = REPO / "test" / "launch_file.py"  # `ros2 launch FILE a:=b` with launch.LaunchService (no ros2cli here)
BUILTIN_CHECKPOINT = REPO / "lane_seg_core" / "weights" / "lane_seg_synth.pt"
LAUNCH_START_S = 120.0  # the launch, then the node's start-up (torch, the model, its warm-up) on a busy machine
ANSWER_S = 30.0
# What the launch below is given (use_rviz:=false spelled out), and what the params file it gets says.
ARGUMENTS = {"image_topic": "/test_cam/image_raw", "camera_info_topic": "/test_cam/camera_info", "namespace": "front",
             "checkpoint": str(BUILTIN_CHECKPOINT), "use_compressed": "false", "use_rviz": "false"}
# device and threads only in the file (device's argument left empty: the file's value stays); use_compressed is
# true in the file and false as an argument (the argument wins).
PARAMS_FILE_VALUES = {"device": "cpu", "threads": 1, "use_compressed": True, "publish_overlay": False}


def require_launch_ros() -> None:
    try:
        import launch_ros  # noqa: F401
    except ImportError as error:
        pytest.skip(f"launch_ros does not import ({error}): make test installs it from ROS_LAUNCH_VENDOR "
                    "(../shared/vendor/ros2-launch) when that folder exists")


@pytest.fixture
def installed(monkeypatch) -> None:
    """launch_ros and the package installed in this environment, found through AMENT_PREFIX_PATH (as in a launch)."""
    require_launch_ros()
    monkeypatch.setenv("AMENT_PREFIX_PATH", os.pathsep.join(p for p in (sys.prefix, os.environ.get("AMENT_PREFIX_PATH"))
                                                           if p))


def launch_env(domain: int, log_dir: Path) -> dict[str, str]:
    """A launch's environment: the installed package in AMENT_PREFIX_PATH, and no profile: the launch sets it."""
    from ros_helpers import ros_env

    env = ros_env(domain, log_dir)
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE")
    env["AMENT_PREFIX_PATH"] = os.pathsep.join(p for p in (sys.prefix, env.get("AMENT_PREFIX_PATH")) if p)
    return env


def start_launch(arguments: dict[str, str], env: dict[str, str], log: Path) -> Spawned:
    """The launch file under launch.LaunchService in a process group of its own (the processes it starts join it)."""
    argv = [sys.executable, str(LAUNCHER), str(LAUNCH_FILE)] + [f"{k}:={v}" for k, v in arguments.items()]
    return Spawned(argv, log=log, env=env, cwd=log.parent)


def node_processes(members: dict[int, list[str]]) -> dict[int, list[str]]:
    """The processes running lib/lane_seg/lane_seg_node (an interpreter and the script: argv[1])."""
    return {pid: argv for pid, argv in members.items()
            if any(Path(a).parts[-3:] == ("lib", PACKAGE, EXECUTABLE) for a in argv[:2])}


def load_launch_module() -> types.ModuleType:
    """The launch file as a module, with the real launch / launch_ros (as launch itself imports it)."""
    spec = importlib.util.spec_from_file_location("lane_seg_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Launched:
    launch: Spawned
    probe: object  # ros_helpers.Probe
    node_pid: int
    node_argv: list[str]
    params_file: Path
    lanes: object  # ros_helpers.Inbox of /front/lanes


@pytest.fixture(scope="module")
def launched(tmp_path_factory) -> Launched:
    """The launch with ARGUMENTS and a params file with PARAMS_FILE_VALUES, once, until its node answers a probe."""
    require_launch_ros()
    from lane_seg.msg import LaneArray
    from ros_helpers import Probe, release_domain_id, reserve_domain_id

    tmp = tmp_path_factory.mktemp("launch")
    document = yaml.safe_load(CONFIG_FILE.read_text())
    document["/**"]["ros__parameters"].update(PARAMS_FILE_VALUES)
    params_file = tmp / "params.yaml"
    params_file.write_text(yaml.safe_dump(document))
    domain = reserve_domain_id()
    launch = start_launch(dict(ARGUMENTS, params_file=str(params_file)), launch_env(domain, tmp / "ros_log"),
                          tmp / "launch.log")
    probe = None
    try:
        probe = Probe(domain, "test_launch_probe")
        lanes, _ = probe.subscribe(LaneArray, "/front/lanes")

        def subscribed() -> bool:  # the node subscribes (to an image and a camera_info topic) once it is ready
            return not launch.alive() or len(graph(probe, "subscriber") - ROS_OWN_TOPICS) >= 2

        assert probe.wait_until(subscribed, LAUNCH_START_S, interval=0.2) and launch.alive(), \
            f"the launched node /front/{NODE_NAME} did not subscribe to its inputs within {LAUNCH_START_S:.0f} s:\n" \
            f"{launch.output()[-3000:]}"
        nodes = node_processes(group_members(launch.pid))
        assert len(nodes) == 1, f"expected one {EXECUTABLE} process in the launch's group, got {nodes}"
        (node_pid, node_argv), = nodes.items()
        yield Launched(launch, probe, node_pid, node_argv, params_file, lanes)
    finally:
        if probe is not None:
            probe.close()
        launch.stop()
        release_domain_id(domain)


def graph(probe, kind: str, node: str = NODE_NAME, namespace: str = "/front") -> set[str]:
    """Topics `node` in `namespace` has publishers or subscriptions ('publisher' / 'subscriber') on; empty if unseen."""
    try:
        return {topic for topic, _ in getattr(probe.node, f"get_{kind}_names_and_types_by_node")(node, namespace)}
    except Exception:  # not in the graph (yet): rclpy raises NodeNameNonExistentError
        return set()


def test_the_launch_starts_the_installed_node_with_the_params_file_and_no_rviz2(launched):
    script = Path(launched.node_argv[1])
    assert script == Path(sys.prefix, "lib", PACKAGE, EXECUTABLE), launched.node_argv
    assert ["--params-file", str(launched.params_file)] == \
        launched.node_argv[launched.node_argv.index("--params-file"):][:2], launched.node_argv
    assert "__ns:=/front" in launched.node_argv and f"__node:={NODE_NAME}" in launched.node_argv
    others = {pid: argv for pid, argv in group_members(launched.launch.pid).items()
              if pid not in (launched.launch.pid, launched.node_pid)}
    assert not any("rviz2" in " ".join(argv) for argv in others.values()), others
    assert others == {}, f"use_rviz:=false: the launch started more than the node: {others}"
    assert "rviz2" not in launched.launch.output()


def test_the_node_subscribes_to_the_remapped_topics_and_publishes_in_its_namespace(launched):
    probe = launched.probe
    expected_outputs = {"/front/lanes", "/front/lanes/instance_mask", "/front/lanes/markers", "/front/lanes/overlay"}
    assert probe.wait_until(lambda: expected_outputs <= graph(probe, "publisher") and
                            ARGUMENTS["camera_info_topic"] in graph(probe, "subscriber"), ANSWER_S), \
        (graph(probe, "publisher"), graph(probe, "subscriber"))
    subscriptions = graph(probe, "subscriber") - ROS_OWN_TOPICS
    # use_compressed:=false overrides the file's true: raw images, not <image_topic>/compressed
    assert subscriptions == {ARGUMENTS["image_topic"], ARGUMENTS["camera_info_topic"]}, subscriptions


def test_a_frame_on_the_remapped_image_topic_is_answered_on_the_namespaced_lanes(launched):
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from lane_seg_core.synth import render_scene, sample_frame
    from lane_seg_ros.conversions import array_to_image

    frame = array_to_image(render_scene(sample_frame(20261125, 0))[0],
                           Header(stamp=Time(sec=1_790_000_123, nanosec=456), frame_id="test_cam"), "bgr8")
    publisher = launched.probe.publisher(Image, ARGUMENTS["image_topic"])
    deadline = time.monotonic() + ANSWER_S
    answer = None
    while answer is None and time.monotonic() < deadline:  # resent: the node subscribes best effort
        assert launched.launch.alive(), launched.launch.output()[-3000:]
        publisher.publish(frame)
        answer = launched.lanes.with_stamp(frame.header.stamp, 5.0)
    assert answer is not None, f"no lanes on /front/lanes within {ANSWER_S} s:\n{launched.launch.output()[-3000:]}"
    assert answer.header.frame_id == "test_cam"
    assert answer.lanes and all(len(lane.points_image) >= 2 for lane in answer.lanes), answer.lanes


def test_the_params_file_and_the_given_arguments_reach_the_node(launched):
    values = launched.probe.get_parameters(f"/front/{NODE_NAME}", ["checkpoint", "device", "threads",
                                                                    "use_compressed", "publish_overlay"])
    assert values == {"checkpoint": ARGUMENTS["checkpoint"],  # argument (the file's is empty)
                      "device": "cpu", "threads": 1, "publish_overlay": False,  # the file alone
                      "use_compressed": False}, values  # the argument over the file's true


def test_the_launch_gives_the_node_the_packages_shared_memory_profile(launched):
    environ = dict(item.split("=", 1) for item in
                   Path(f"/proc/{launched.node_pid}/environ").read_bytes().decode().split("\0") if "=" in item)
    assert environ.get("FASTDDS_DEFAULT_PROFILES_FILE") == str(Path(sys.prefix, "share", PACKAGE, "config",
                                                                     "fastdds_shm.xml"))


def test_the_rviz2_node_is_remapped_to_the_launch_topics_and_namespace(installed):
    from launch import LaunchContext
    from launch.utilities import perform_substitutions

    module = load_launch_module()
    share = module.get_package_share_directory(PACKAGE)
    context = LaunchContext()
    for image_topic, namespace, image_seen in (("/cameras/front/image_raw", "front", "/cameras/front/image_raw"),
                                               ("camera/image_raw", "front", "/front/camera/image_raw"),
                                               ("/camera/image_raw", "", "/camera/image_raw")):
        node = module.rviz_node(image_topic, namespace)  # the real launch_ros Node, as the launch would start it
        node._perform_substitutions(context)  # what Node.execute does before it starts the process
        prefix = f"/{namespace}" if namespace else ""
        assert (node.node_package, node.node_executable) == ("rviz2", "rviz2")
        assert node.node_name.rsplit("/", 1)[-1] == "lane_seg_rviz"
        assert sorted(node.expanded_remapping_rules) == sorted([
            ("/camera/image_raw", image_seen), ("/lanes/overlay", f"{prefix}/lanes/overlay"),
            ("/lanes/markers", f"{prefix}/lanes/markers")])
        assert [perform_substitutions(context, part) for part in node.cmd[1:3]] == \
            ["-d", os.path.join(share, "rviz", "lane_seg.rviz")]


def test_use_rviz_without_rviz2_stops_the_launch_before_anything_starts(tmp_path):
    require_launch_ros()
    from ros_helpers import release_domain_id, reserve_domain_id

    domain = reserve_domain_id()
    launch = start_launch({"use_rviz": "true"}, launch_env(domain, tmp_path / "ros_log"), tmp_path / "launch.log")
    try:
        code = launch.wait(LAUNCH_START_S)
        left = group_members(launch.pid)
    finally:
        launch.stop()
        release_domain_id(domain)
    output = launch.output()
    assert left == {}, f"the failed launch left processes running: {left}\n{output[-3000:]}"
    assert "process started" not in output, output[-3000:]  # launch logs every process it starts
    assert code == 1, output[-3000:]
    assert "use_rviz:=true, but the package 'rviz2' is not installed" in output, output[-3000:]


def test_a_boolean_argument_that_is_not_true_or_false_is_refused_naming_it(installed):
    from launch import LaunchContext
    from launch.launch_description_sources import get_launch_description_from_python_launch_file
    from launch.utilities import perform_substitutions

    description = get_launch_description_from_python_launch_file(str(LAUNCH_FILE))
    arguments = {a.name: a for a in description.get_launch_arguments()}
    assert REQUIRED_ARGUMENTS <= set(arguments), set(arguments)
    context = LaunchContext()
    for argument in arguments.values():
        context.launch_configurations[argument.name] = perform_substitutions(context, argument.default_value)
    context.launch_configurations["use_compressed"] = "maybe"
    with pytest.raises(ValueError, match="launch argument 'use_compressed' must be true or false, got 'maybe'"):
        load_launch_module().launch_setup(context)


# Last: it stops the module's launch.
def test_sigint_to_the_launch_stops_the_node_and_leaves_no_process(launched):
    launch = launched.launch
    assert launch.alive() and launched.node_pid in group_members(launch.pid)
    launch.signal(signal.SIGINT)  # to the launch alone: it must stop what it started
    assert launch.wait(60.0) == 0, launch.output()[-3000:]
    assert not group_alive(launch.pid), f"left running in the launch's group: {group_members(launch.pid)}"
    assert not Path(f"/proc/{launched.node_pid}").exists() or \
        Path(f"/proc/{launched.node_pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z", "the node still runs"
    assert f"process has finished cleanly [pid {launched.node_pid}]" in launch.output(), launch.output()[-3000:]
