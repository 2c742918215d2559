"""Start lane_seg's lane detector on a camera, optionally with rviz2.

    ros2 launch lane_seg lane_seg.launch.py                                   # /camera/image_raw, built-in model
    ros2 launch lane_seg lane_seg.launch.py image_topic:=/front/image_raw checkpoint:=/models/best.pt device:=cuda
    ros2 launch lane_seg lane_seg.launch.py use_compressed:=true use_rviz:=true
    ros2 launch lane_seg lane_seg.launch.py params_file:=/my/lane_seg.yaml namespace:=front
    ros2 launch lane_seg lane_seg.launch.py --show-args                      # every argument, documented

The parameters file (config/lane_seg.yaml by default) is the source of truth for the node's settings. The
`checkpoint`, `device` and `use_compressed` arguments override it only when they are given; left empty
they leave the file's values alone.

Topics: the node subscribes to `image` (or `image/compressed`) and `camera_info`, remapped here to
`image_topic`, `image_topic`/compressed and `camera_info_topic`; it publishes `lanes`, `lanes/instance_mask`,
`lanes/markers` and `lanes/overlay` in `namespace` (so /lanes, ... by default, /front/lanes, ... with
namespace:=front) and `/diagnostics`.

Fast-DDS's default shared-memory segment (512 KB) is too small for camera frames: a 1280x720 frame is
fragmented and, with best-effort QoS, mostly lost. This file therefore points FASTDDS_DEFAULT_PROFILES_FILE
at the package's shared-memory profile (config/fastdds_shm.xml) for every process it starts. The camera
driver must load the same profile (export FASTDDS_DEFAULT_PROFILES_FILE=... before starting it);
fastdds_profile:='' keeps whatever the environment already has.
"""

import os

from ament_index_python.packages import PackageNotFoundError, get_package_prefix, get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "lane_seg"
EXECUTABLE = "lane_seg_node"
NODE_NAME = "lane_seg"

# Launch arguments that override the node parameter of the same name, and only when given (non-empty):
# argument/parameter name -> the parameter's type (the node rejects a string where it declared a bool).
PARAMETER_OVERRIDES = {"checkpoint": "str", "device": "str", "use_compressed": "bool"}

# Topics in rviz/lane_seg.rviz: the defaults of this file (image_topic /camera/image_raw, no namespace).
# rviz2 is remapped to the actual topics, so the same rviz file works with any image_topic and namespace.
RVIZ_DEFAULT_TOPICS = {
    "image": "/camera/image_raw",
    "overlay": "/lanes/overlay",
    "markers": "/lanes/markers",
}


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory(PACKAGE)
    arguments = [
        DeclareLaunchArgument(
            "image_topic", default_value="/camera/image_raw",
            description="Camera image topic (sensor_msgs/Image). The node's `image` input is remapped to it, and "
                        "its `image/compressed` input to <image_topic>/compressed (image_transport's name)."),
        DeclareLaunchArgument(
            "camera_info_topic", default_value="/camera/camera_info",
            description="Camera calibration topic (sensor_msgs/CameraInfo), remapped to the node's `camera_info`; "
                        "used for the ground plane (ground.enabled) and the markers. Harmless when nothing publishes it."),
        DeclareLaunchArgument(
            "checkpoint", default_value="",
            description="Model to load: a lane_seg checkpoint (.pt) or an exported .onnx file. Empty: the params "
                        "file's `checkpoint` (in the shipped file: empty = the built-in model)."),
        DeclareLaunchArgument(
            "device", default_value="",
            description="Where the network runs: auto (CUDA when present, else CPU), cpu, cuda or cuda:N. "
                        "Empty: the params file's `device` (auto in the shipped file)."),
        DeclareLaunchArgument(
            "use_compressed", default_value="",
            description="true: subscribe to <image_topic>/compressed (sensor_msgs/CompressedImage, jpeg/png) instead "
                        "of raw images. Empty: the params file's `use_compressed` (false in the shipped file)."),
        DeclareLaunchArgument(
            "params_file", default_value=os.path.join(share, "config", "lane_seg.yaml"),
            description="YAML file with the node's parameters (thresholds, QoS, ground plane, ...); start from a "
                        "copy of the package's config/lane_seg.yaml."),
        DeclareLaunchArgument(
            "namespace", default_value="",
            description="Namespace of the node and its output topics (e.g. front -> /front/lanes). "
                        "Empty: the root namespace (/lanes, /lanes/markers, ...)."),
        DeclareLaunchArgument(
            "use_rviz", default_value="false", choices=["true", "false"],
            description="true: also start rviz2 with the package's rviz/lane_seg.rviz (camera image, overlay, "
                        "lane markers)."),
        DeclareLaunchArgument(
            "fastdds_profile", default_value=os.path.join(share, "config", "fastdds_shm.xml"),
            description="Fast-DDS XML profile for the processes started here (FASTDDS_DEFAULT_PROFILES_FILE): the "
                        "package's shared-memory profile, which camera-sized images need. Empty: leave the "
                        "environment as it is. The camera driver must load the same profile."),
    ]
    return LaunchDescription(arguments + [OpaqueFunction(function=launch_setup)])


def launch_setup(context, *args, **kwargs) -> list:
    """The actions, once the arguments are known (some parameters and remappings depend on their values)."""

    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context).strip()

    actions = []

    # 1. The Fast-DDS profile, set before any process starts so that the node and rviz2 both load it.
    if arg("fastdds_profile"):
        actions.append(SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", arg("fastdds_profile")))

    # 2. The node: the params file first, then only the overrides that were given (the last value wins).
    overrides = {}
    for name, kind in PARAMETER_OVERRIDES.items():
        value = arg(name)
        if value:
            overrides[name] = parse_bool(name, value) if kind == "bool" else value
    image_topic = arg("image_topic")
    namespace = arg("namespace").strip("/")
    actions.append(Node(
        package=PACKAGE,
        executable=EXECUTABLE,
        name=NODE_NAME,
        namespace=namespace,
        parameters=[arg("params_file")] + ([overrides] if overrides else []),
        remappings=[
            # The node's input names (left) are relative, resolved in its namespace; so is a relative image_topic.
            ("image", image_topic),
            ("image/compressed", image_topic + "/compressed"),
            ("camera_info", arg("camera_info_topic")),
        ],
        output="screen",
        emulate_tty=True,
    ))

    # 3. rviz2 (optional), remapped from the rviz file's default topics to the ones used in this launch.
    if parse_bool("use_rviz", arg("use_rviz")):
        require_rviz2()
        actions.append(rviz_node(image_topic, namespace))
    return actions


def rviz_node(image_topic: str, namespace: str) -> Node:
    """rviz2 with the package's rviz file, remapped from its default topics to this launch's image and outputs."""
    prefix = f"/{namespace}" if namespace else ""
    return Node(
        package="rviz2",
        executable="rviz2",
        name="lane_seg_rviz",
        arguments=["-d", os.path.join(get_package_share_directory(PACKAGE), "rviz", "lane_seg.rviz")],
        remappings=[
            (RVIZ_DEFAULT_TOPICS["image"], resolve(image_topic, namespace)),
            (RVIZ_DEFAULT_TOPICS["overlay"], prefix + RVIZ_DEFAULT_TOPICS["overlay"]),
            (RVIZ_DEFAULT_TOPICS["markers"], prefix + RVIZ_DEFAULT_TOPICS["markers"]),
        ],
        output="screen",
    )


def require_rviz2() -> None:
    """Stop the launch, before any process starts, when rviz2 is asked for but not installed.

    launch_ros looks the executable up only when it starts it; failing then, the launch exits and leaves the node it
    has already started running, orphaned.
    """
    try:
        get_package_prefix("rviz2")
    except PackageNotFoundError:
        raise RuntimeError("use_rviz:=true, but the package 'rviz2' is not installed (not found in AMENT_PREFIX_PATH): "
                           "install it (apt install ros-$ROS_DISTRO-rviz2) or use use_rviz:=false") from None


def parse_bool(name: str, value: str) -> bool:
    """'true'/'false' (any case) -> bool; anything else is an error naming the argument."""
    if value.lower() in ("true", "1", "yes", "on"):
        return True
    if value.lower() in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"launch argument '{name}' must be true or false, got '{value}'")


def resolve(topic: str, namespace: str) -> str:
    """The absolute name of `topic` as the node in `namespace` sees it (a relative name joins the namespace)."""
    if topic.startswith("/"):
        return topic
    return "/" + "/".join(part for part in (namespace, topic) if part)
