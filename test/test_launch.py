"""launch/lane_seg.launch.py, rviz/lane_seg.rviz, config/lane_seg.yaml and the install rules agree with the node.

Four layers, so that CI (ROS 2 from PyPI wheels: rclpy, no `launch` / `launch_ros`) checks what it can:

* always, statically: the launch file parsed with `ast` (documented arguments, the node it starts, the
  files it refers to), CMakeLists.txt, setup.py, package.xml and the rviz file;
* always, against the real node: scripts/lane_seg_node is started as its own process with the shipped
  config/lane_seg.yaml (and a second one with use_compressed:=true), and its declared parameters and their
  types (rcl_interfaces ListParameters / DescribeParameters) and its publishers / subscriptions (the ROS graph)
  are compared with the YAML, the launch file and the rviz file;
* always, the launch file's logic: its `launch_setup` runs against stand-ins for `launch` / `launch_ros` that
  record what it creates (which parameters it overrides, the remappings, rviz2 on request);
* where `launch_ros` imports (a ROS 2 install): the real launch description is loaded and introspected.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

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


def _start_node(extra_args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    command = [sys.executable, str(NODE_SCRIPT), "--ros-args", "--params-file", str(CONFIG_FILE), *extra_args]
    with open(log, "wb") as out:
        return subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


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
    processes: dict[str, subprocess.Popen] = {}
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
                    if process.poll() is not None:
                        fail(f"the node ({name}) exited with code {process.returncode} during start-up")
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
            _stop(process)
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


def test_the_launch_remappings_name_topics_the_node_uses(node_interface):
    launch = load_launch_with_stand_ins()
    remapped = {source for source, _ in launch.run()["node"].kwargs["remappings"]}
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
    programs = re.search(r"install\(PROGRAMS ([^)]*?)\s+DESTINATION lib/\$\{PROJECT_NAME\}\)", cmake)
    assert programs and f"scripts/{EXECUTABLE}" in programs.group(1).split(), "scripts/lane_seg_node is not installed"
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
# The launch file's logic, run against stand-ins for launch / launch_ros (no ROS install needed)
# --------------------------------------------------------------------------------------------------

SHARE = "/opt/ros/test/share/lane_seg"


class Recorded:
    """A stand-in action: remembers how it was constructed."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


@dataclass
class LaunchUnderTest:
    module: types.ModuleType
    defaults: dict[str, str]

    def run(self, **given: str) -> dict[str, object]:
        """launch_setup with the arguments' defaults and `given` -> {'env': ..., 'node': ..., 'rviz': ...}."""
        context = {**self.defaults, **given}
        found = {}
        for action in self.module.launch_setup(context):
            if type(action).__name__ == "SetEnvironmentVariable":
                found["env"] = action
            elif action.kwargs.get("executable") == "rviz2":
                found["rviz"] = action
            else:
                found["node"] = action
        return found


def load_launch_with_stand_ins() -> LaunchUnderTest:
    """Import the launch file with recording stand-ins for launch, launch_ros and the package index."""

    class LaunchConfiguration:
        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return context[self.name]

    stand_ins = {
        "launch": dict(LaunchDescription=lambda entities: list(entities)),
        "launch.actions": dict(DeclareLaunchArgument=type("DeclareLaunchArgument", (Recorded,), {}),
                               OpaqueFunction=type("OpaqueFunction", (Recorded,), {}),
                               SetEnvironmentVariable=type("SetEnvironmentVariable", (Recorded,), {})),
        "launch.substitutions": dict(LaunchConfiguration=LaunchConfiguration),
        "launch_ros": {},
        "launch_ros.actions": dict(Node=type("Node", (Recorded,), {})),
        "ament_index_python": {},
        "ament_index_python.packages": dict(
            get_package_share_directory=lambda package: SHARE if package == PACKAGE else pytest.fail(package)),
    }
    saved = {name: sys.modules.get(name) for name in stand_ins}
    try:
        for name, attributes in stand_ins.items():
            sys.modules[name] = stand_in = types.ModuleType(name)
            stand_in.__dict__.update(attributes)
        spec = importlib.util.spec_from_file_location("lane_seg_launch_under_test", LAUNCH_FILE)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
    entities = module.generate_launch_description()
    defaults = {e.args[0]: e.kwargs["default_value"] for e in entities if type(e).__name__ == "DeclareLaunchArgument"}
    assert type(entities[-1]).__name__ == "OpaqueFunction" and entities[-1].kwargs["function"] is module.launch_setup
    return LaunchUnderTest(module, defaults)


def test_launch_defaults_start_the_node_with_the_yaml_alone_and_the_shm_profile():
    launch = load_launch_with_stand_ins()
    assert launch.defaults["params_file"] == f"{SHARE}/config/lane_seg.yaml"
    found = launch.run()
    assert set(found) == {"env", "node"}  # no rviz2 by default
    assert found["env"].args == ("FASTDDS_DEFAULT_PROFILES_FILE", f"{SHARE}/config/fastdds_shm.xml")
    node = found["node"].kwargs
    assert (node["package"], node["executable"], node["name"], node["namespace"]) == (PACKAGE, EXECUTABLE, NODE_NAME, "")
    assert node["parameters"] == [f"{SHARE}/config/lane_seg.yaml"]  # nothing overrides the YAML
    assert node["remappings"] == [("image", "/camera/image_raw"), ("image/compressed", "/camera/image_raw/compressed"),
                                  ("camera_info", "/camera/camera_info")]


def test_launch_overrides_only_the_given_parameters_and_remaps_rviz_to_the_namespace():
    launch = load_launch_with_stand_ins()
    found = launch.run(checkpoint="/models/best.pt", use_compressed="True", namespace="/front/", use_rviz="true",
                       image_topic="/cameras/front/image_raw", fastdds_profile="", params_file="/my/params.yaml")
    assert "env" not in found  # fastdds_profile:='' leaves the environment alone
    node = found["node"].kwargs
    assert node["parameters"] == ["/my/params.yaml", {"checkpoint": "/models/best.pt", "use_compressed": True}]
    assert node["namespace"] == "front"
    assert ("image/compressed", "/cameras/front/image_raw/compressed") in node["remappings"]
    rviz = found["rviz"].kwargs
    assert rviz["arguments"] == ["-d", f"{SHARE}/rviz/lane_seg.rviz"]
    assert sorted(rviz["remappings"]) == sorted([("/camera/image_raw", "/cameras/front/image_raw"),
                                                 ("/lanes/overlay", "/front/lanes/overlay"),
                                                 ("/lanes/markers", "/front/lanes/markers")])
    # a relative image topic lives in the node's namespace, for the node and for rviz2 alike
    found = launch.run(image_topic="camera/image_raw", namespace="front", use_rviz="true", device="cuda")
    assert ("/camera/image_raw", "/front/camera/image_raw") in found["rviz"].kwargs["remappings"]
    assert found["node"].kwargs["parameters"][1] == {"device": "cuda"}


def test_launch_rejects_a_boolean_argument_that_is_not_true_or_false():
    launch = load_launch_with_stand_ins()
    with pytest.raises(ValueError, match="use_compressed"):
        launch.run(use_compressed="maybe")


# --------------------------------------------------------------------------------------------------
# With a ROS 2 install: the real launch description
# --------------------------------------------------------------------------------------------------


def test_the_real_launch_description_loads_and_can_be_introspected():
    pytest.importorskip("launch_ros")
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    from launch import LaunchContext, LaunchIntrospector
    from launch.launch_description_sources import get_launch_description_from_python_launch_file
    from launch.utilities import perform_substitutions

    try:
        share = get_package_share_directory(PACKAGE)
    except PackageNotFoundError:
        pytest.skip("lane_seg is not installed in this ROS environment (colcon build, then source install/setup.bash)")
    description = get_launch_description_from_python_launch_file(str(LAUNCH_FILE))
    arguments = {a.name: a for a in description.get_launch_arguments()}
    assert REQUIRED_ARGUMENTS <= set(arguments)
    context = LaunchContext()
    for argument in arguments.values():
        assert argument.description.strip(), argument.name
        context.launch_configurations[argument.name] = perform_substitutions(context, argument.default_value)
    assert context.launch_configurations["params_file"] == os.path.join(share, "config", "lane_seg.yaml")
    text = LaunchIntrospector().format_launch_description(description)
    assert "image_topic" in text or "DeclareLaunchArgument" in text, text[:2000]

    # the actions it creates with its defaults: the profile, then the node (no rviz2)
    module_spec = importlib.util.spec_from_file_location("lane_seg_launch_real", LAUNCH_FILE)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    actions = module.launch_setup(context)
    assert [type(a).__name__ for a in actions] == ["SetEnvironmentVariable", "Node"]
