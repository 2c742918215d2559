"""lane_seg: road-lane instance segmentation (SegNet + discriminative loss) with a ROS 2 node."""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
version = {}
exec((ROOT / "lane_seg_core" / "__init__.py").read_text(), version)

setup(
    name="lane-seg",
    version=version["__version__"],
    description="Road-lane instance segmentation: SegNet, discriminative loss, tuSimple tools, ROS 2 node",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8") if (ROOT / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["lane_seg_core", "lane_seg_core.*", "lane_seg_ros", "lane_seg_ros.*"]),
    package_data={"lane_seg_core": ["weights/*.pt"]},
    install_requires=[
        "torch>=2.14,<2.15",
        "numpy>=1.24",
        "opencv-python-headless>=4.8,<5",
        "pillow>=10",
        "tqdm>=4.60",
    ],
    extras_require={
        "train": ["torchvision>=0.29,<0.30", "tensorboard>=2.14", "tqdm>=4.60"],
        "ros": ["rosbags>=0.10"],
        "export": ["onnx>=1.17", "onnxscript>=0.5", "onnxruntime>=1.20"],
        "dev": ["pytest>=8", "pytest-timeout>=2.3", "scikit-learn>=1.3", "torchvision>=0.29,<0.30",
                "tensorboard>=2.14", "tqdm>=4.60", "onnx>=1.17", "onnxscript>=0.5", "onnxruntime>=1.20"],
    },
    entry_points={"console_scripts": ["lane-seg = lane_seg_ros.cli:main", "lane_seg_node = lane_seg_ros.node:main"]},
)
