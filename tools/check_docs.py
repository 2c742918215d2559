#!/usr/bin/env python3
"""Check that every command in README.md and docs/*.md runs as written.

    .venv/bin/python tools/check_docs.py                  # README.md and docs/*.md
    .venv/bin/python tools/check_docs.py docs/training.md # one file
    .venv/bin/python tools/check_docs.py --list           # the blocks and how each is checked

Conventions for writers (docs/README.md repeats them):

* Shell commands go in ```bash blocks, and every ```bash block is run, unless the line just before its
  fence (blank lines allowed) is `<!-- check: static: REASON -->` (REASON: "needs ros2cli", "needs a GPU",
  "runs until Ctrl-C", ...). Other fence languages allowed: text (output), python, yaml, cpp, xml, json.
  Any other language, and a fence without one, is an error, so no command escapes checking.
* Run mode: the blocks of one file run in order in one scratch directory that holds a copy of the
  repository (without .git and build outputs) and `.venv` linked to the repository's. Each block runs in one
  bash process (`cd` and `export` last until the block ends) with PATH starting at .venv/bin,
  ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, a private ROS_DOMAIN_ID and ROS_LOG_DIR, and OMP_NUM_THREADS=1
  unless set (steadier on a shared CPU). Background processes left behind are stopped. Commands are read line by
  line (`\\` continuations joined, comments removed) and the block stops at the first command that fails,
  `a && b` and pipelines included. After a failed block, the file's later blocks are only checked statically.
* Python blocks are compiled; unless marked static they run too, in the same scratch directory: block k runs
  after the file's earlier python blocks in one fresh interpreter (so it can use their names), with
  `__name__ == "__doc_check__"` (an `if __name__ == "__main__":` guard keeps a node from spinning) and the
  names of PRELUDE below (`rgb_image`, `camera_info`).
* To keep it fast, run mode changes sizes and data locations only, as listed in SUBSTITUTIONS (one comment
  each); a substitution never adds a flag and removes only the flags it names (checked: `--pretrained`, whose
  full-width weights do not fit the shrunk `--width`). Files the docs assume the reader has
  (FIXTURES: a tuSimple layout, the VGG16-BN weights, road.jpg, drive.mp4, drive.mcap) are made when a block
  names them.
* Static mode (every block; the only check of static blocks): `bash -n`, then each command the project owns is
  checked against the real thing: `lane-seg ...` and `python -m lane_seg_core.cli ...` / `torchrun ... -m
  lane_seg_core.cli ...` by the real argparse parsers; `ros2 launch lane_seg lane_seg.launch.py a:=b` against
  the launch file's DeclareLaunchArgument names; `ros2 run lane_seg lane_seg_node --ros-args -p/-r/--params-file`
  and `ros2 param set /lane_seg NAME` against lane_seg_ros/parameters.py SPECS and the node's topics;
  `make TARGET VAR=x` against the Makefile; `python path/to/script.py` against the repository's files.
  ```yaml blocks with `ros__parameters` are checked against SPECS too.
* A run block must not run the test suite (`make test`, `pytest`, `.ci/run`): the suite runs this checker.

Output: one line per block, `file:line mode ok|FAILED ...`, the failing command and its output's tail below it.
Exit status 1 when anything failed, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

REPO = Path(__file__).resolve().parent.parent
GUARD = "LANE_SEG_CHECK_DOCS_ACTIVE"  # set for the commands the checker runs: a doc must not re-run the checker
INERT_LANGUAGES = {"text", "yaml", "cpp", "xml", "json"}
MARKER = re.compile(r"<!--\s*check:\s*(.*?)\s*-->")
STATIC_MARKER = re.compile(r"static:\s*(\S.*)")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^\s`]*)(.*)$")
# Copied into the scratch directory: the repository except what git ignores or never holds.
NOT_COPIED = {".git", ".venv", "out", "runs", "data", "build", ".pytest_cache", ".ruff_cache", "__pycache__"}
DEFAULT_TIMEOUT_S = 900.0
TAIL_LINES = 15
OUTPUT_MARK = "@@check_docs:next_command@@"  # written between commands, so a failure shows its own output
# Commands that run the test suite, which runs this checker: a doc block must not run them (mark it static).
RUNS_THE_TESTS = re.compile(r"(^|[\s;&|(])(make\s+(\S+\s+)*test(\s|$)|(\S*/)?pytest\b|(\S*/)?\.ci/run\b|python3?\s+-m\s+pytest\b)")


# ---------------------------------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class Substitution:
    """In run mode, `pattern` becomes `replacement` in commands that match `commands`; `why` says why it is safe."""

    pattern: str
    replacement: str  # {fixtures} is the scratch directory's folder of made-up data
    commands: str
    why: str
    drops: tuple[str, ...] = ()  # flags this substitution may remove (every other flag must stay)


SUBSTITUTIONS = (
    Substitution(r"--count \d+", "--count 8", r"\blane-seg synth\b",
                 "synthetic frames to write: 8 exercise the command as well as 3,000 (one training batch of 8)"),
    Substitution(r"--epochs \d+", "--epochs 1", r"\b(lane-seg|lane_seg_core\.cli) train\b",
                 "training length: one epoch of the small data set runs every part of the trainer"),
    Substitution(r"--max-steps \d+", "--max-steps 2", r"\b(lane-seg|lane_seg_core\.cli) train\b",
                 "training length"),
    Substitution(r"--batch-size \d+", "--batch-size 2", r"\blane-seg (train|eval|predict|bag)\b",
                 "batch size: the made-up data sets hold 8 to 12 frames"),
    Substitution(r"--workers \d+", "--workers 1", r"\blane-seg (train|synth|drive)\b",
                 "loader / rendering processes: the checker has 2 cores"),
    Substitution(r"--width 1(\.0*)?(?=\s|$)", "--width 0.125", r"\b(lane-seg|lane_seg_core\.cli) train\b",
                 "the full-width SegNet (29 M parameters) takes minutes per CPU step; the built-in width runs the same code"),
    Substitution(r"\s--pretrained\s+\S+", "", r"\b(lane-seg|lane_seg_core\.cli) train\b.*--width 1(\.0*)?(\s|$)",
                 "ImageNet VGG16-BN weights fit only width 1.0, which run mode shrinks; test_model.py loads them",
                 drops=("--pretrained",)),
    Substitution(r"--img-size \d+ \d+", "--img-size 256 128", r"\b(lane-seg|lane_seg_core\.cli) train\b",
                 "network input size: the smallest the checker trains at (the built-in model's)"),
    Substitution(r"--max-frames \d+", "--max-frames 4", r"\blane-seg predict\b", "frames to predict"),
    Substitution(r"--seconds \d+(\.\d+)?", "--seconds 2", r"\blane-seg (drive|demo)\b",
                 "length of a synthetic drive"),
    Substitution(r"--fps \d+(\.\d+)?", "--fps 10", r"\blane-seg drive\b",
                 "frames per second of a synthetic drive: fewer frames of the same road"),
    Substitution(r"--device cuda(:\d+)?", "--device cpu", r".",
                 "the checker runs on CPU machines; the device itself is checked by test/ (GPU tests)"),
    Substitution(r"(?<![\w.-])/data/tuSimple(?=[/\s]|$)", "{fixtures}/tuSimple", r".",
                 "the tuSimple download: a small synthetic copy of its layout (fixture 'tuSimple')"),
    Substitution(r"(?<![\w.-])[^\s=]*/vgg16_bn-6c64b313\.pth", "{fixtures}/vgg16_bn-6c64b313.pth", r".",
                 "torchvision's ImageNet VGG16-BN file: random weights with its keys (fixture)"),
)

PRELUDE = '''\
import numpy as _np
import cv2 as _cv2
from sensor_msgs.msg import CameraInfo as _CameraInfo
from lane_seg_core.synth import render_scene as _render_scene, sample_frame as _sample_frame

# A 1280x720 RGB road frame, as a camera driver's image would give it.
rgb_image = _cv2.cvtColor(_render_scene(_sample_frame(20261125, 0))[0], _cv2.COLOR_BGR2RGB)
# A calibrated 1280x720 camera (sensor_msgs/CameraInfo).
camera_info = _CameraInfo(width=1280, height=720, k=[1000.0, 0.0, 640.0, 0.0, 1000.0, 360.0, 0.0, 0.0, 1.0])
'''


def _tusimple(fixtures: Path, scratch: Path, env: dict[str, str]) -> None:
    """tuSimple's layout: train_set/ with label_data_0313/0531/0601.json and clips/; test_set/ with the test files."""
    root = fixtures / "tuSimple"
    lane_seg = [str(scratch / ".venv" / "bin" / "lane-seg"), "synth", "--workers", "1"]
    for seed, name in enumerate(("0313", "0531", "0601"), start=1):
        _run_quietly(lane_seg + ["--out", str(root / "train_set"), "--count", "4", "--seed", str(seed),
                                 "--name", name], env)
    _run_quietly(lane_seg + ["--out", str(root / "test_set"), "--count", "4", "--seed", "9", "--name", "0627"], env)
    labels = root / "test_set" / "label_data_0627.json"
    tasks = [dict(json.loads(line), lanes=[]) for line in labels.read_text().splitlines() if line.strip()]
    (root / "test_set" / "test_tasks_0627.json").write_text("".join(json.dumps(t) + "\n" for t in tasks))
    labels.rename(root / "test_set" / "test_label.json")


def _vgg16_bn(fixtures: Path, scratch: Path, env: dict[str, str]) -> None:
    """A torchvision vgg16_bn state dict with random weights; only `features.*` (what --pretrained reads)."""
    code = ("import sys, torch, torchvision; f = torchvision.models.vgg16_bn(weights=None).features.state_dict(); "
            "torch.save({'features.' + k: v for k, v in f.items()}, sys.argv[1])")
    _run_quietly([str(scratch / ".venv" / "bin" / "python"), "-c", code, str(fixtures / "vgg16_bn-6c64b313.pth")], env)


def _frames(count: int, size: tuple[int, int] = (1280, 720)) -> list:
    """Synthetic BGR road frames."""
    import cv2

    from lane_seg_core.synth import render_scene, sample_frame

    return [cv2.resize(render_scene(sample_frame(20261125, i))[0], size, interpolation=cv2.INTER_AREA)
            for i in range(count)]


def _road_jpg(fixtures: Path, scratch: Path, env: dict[str, str]) -> None:
    """road.jpg: one 1280x720 road image."""
    import cv2

    cv2.imwrite(str(scratch / "road.jpg"), _frames(1)[0])


def _drive_mp4(fixtures: Path, scratch: Path, env: dict[str, str]) -> None:
    """drive.mp4: a 6-frame 640x360 video."""
    import cv2

    writer = cv2.VideoWriter(str(scratch / "drive.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (640, 360))
    for frame in _frames(6, (640, 360)):
        writer.write(frame)
    writer.release()


def _drive_mcap(fixtures: Path, scratch: Path, env: dict[str, str]) -> None:
    """drive.mcap: a single-file rosbag2 with 6 bgr8 frames on /camera/image_raw at 10 Hz."""
    code = '''
import sys, shutil, tempfile
from pathlib import Path
import cv2
from rclpy.serialization import serialize_message
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from builtin_interfaces.msg import Time
from lane_seg_core.synth import render_scene, sample_frame
out = Path(sys.argv[1])
folder = Path(tempfile.mkdtemp()) / "bag"
store = get_typestore(Stores.ROS2_KILTED)
with Writer(folder, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
    conn = writer.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=store)
    for i in range(6):
        bgr = cv2.resize(render_scene(sample_frame(20261125, i))[0], (640, 360), interpolation=cv2.INTER_AREA)
        ns = 1_764_000_000_000_000_000 + i * 100_000_000
        header = Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9), frame_id="camera_optical")
        msg = Image(header=header, height=360, width=640, encoding="bgr8", step=640 * 3, data=bgr.tobytes())
        writer.write(conn, ns, serialize_message(msg))
shutil.move(str(next(folder.glob("*.mcap"))), out)
'''
    _run_quietly([str(scratch / ".venv" / "bin" / "python"), "-c", code, str(scratch / "drive.mcap")], env)


# name in a command or python block -> how to make it; names under {fixtures} come from SUBSTITUTIONS.
FIXTURES: dict[str, tuple[Callable[[Path, Path, dict[str, str]], None], str]] = {
    "tuSimple": (_tusimple, "{fixtures}/tuSimple"),
    "vgg16_bn-6c64b313.pth": (_vgg16_bn, "{fixtures}/vgg16_bn-6c64b313.pth"),
    "road.jpg": (_road_jpg, "road.jpg"),
    "drive.mp4": (_drive_mp4, "drive.mp4"),
    "drive.mcap": (_drive_mcap, "drive.mcap"),
}


def _run_quietly(argv: Sequence[str], env: dict[str, str]) -> None:
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"making a fixture failed: {shlex.join(argv)[:200]}\n{_tail(result.stderr or result.stdout)}")


# ---------------------------------------------------------------------------------------------------- blocks


@dataclass
class Block:
    """One fenced block of a markdown file."""

    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    text: str
    static_reason: str | None = None
    problem: str | None = None  # set when the block breaks a convention

    @property
    def where(self) -> str:
        return f"{_shown(self.path)}:{self.line}"

    @property
    def mode(self) -> str:
        if self.problem:
            return "error"
        if self.language in INERT_LANGUAGES:
            return "static" if self.language == "yaml" and "ros__parameters" in self.text else "skip"
        return "static" if self.static_reason else "run"


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def parse_blocks(path: Path) -> list[Block]:
    """The fenced blocks of a markdown file, with their static markers and convention problems."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        # CommonMark: at most 3 spaces of indentation, and no backtick after a backtick fence's opening
        if opening and (len(opening.group(1)) > 3 or (opening.group(2)[0] == "`" and "`" in opening.group(4))):
            opening = None
        if not opening:
            i += 1
            continue
        fence, language = opening.group(2), opening.group(3).lower()
        end = i + 1
        while end < len(lines) and not re.match(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$", lines[end]):
            end += 1
        block = Block(path, i + 1, language, "\n".join(lines[i + 1 : end]))
        block.static_reason, marker_problem = _marker_before(lines, i)
        if end == len(lines):
            block.problem = "the fence is never closed"
        elif not language:
            block.problem = "a fence without a language: use ```bash for commands (checked) or ```text for output"
        elif language not in INERT_LANGUAGES | {"bash", "python"}:
            block.problem = (f"fence language '{language}': commands go in ```bash blocks (checked); allowed "
                             f"otherwise: {', '.join(sorted(INERT_LANGUAGES | {'python'}))}")
        elif marker_problem:
            block.problem = marker_problem
        elif block.static_reason and language in INERT_LANGUAGES:
            block.problem = f"a static marker before a ```{language} block, which is never run anyway"
        blocks.append(block)
        i = end + 1
    return blocks


def _marker_before(lines: Sequence[str], fence_index: int) -> tuple[str | None, str | None]:
    """(static reason, problem) from the `<!-- check: ... -->` line just before a fence (blank lines allowed)."""
    j = fence_index - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    if j < 0:
        return None, None
    marker = MARKER.fullmatch(lines[j].strip())
    if not marker:
        return None, None
    static = STATIC_MARKER.fullmatch(marker.group(1))
    if not static:
        return None, f"unknown check marker '{lines[j].strip()}': write <!-- check: static: REASON -->"
    return static.group(1), None


# ---------------------------------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class Command:
    """One command of a bash block: `\\` continuations joined, comments removed; `line` is its first line."""

    line: int
    text: str


def strip_comment(text: str) -> str:
    """`text` without shell comments (a `#` that starts a word outside quotes) and with `\\`-newlines joined."""
    out, quote, i = [], None, 0
    while i < len(text):
        c = text[i]
        if c == "\\" and quote != "'" and i + 1 < len(text):
            out.append("" if text[i + 1] == "\n" else text[i : i + 2])  # bash drops a backslash-newline
            i += 2
            continue
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or text[i - 1] in " \t\n;&|()"):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def bash_syntax_error(code: str) -> str | None:
    """bash -n's complaint about `code`, or None."""
    result = subprocess.run(["bash", "-n"], input=code, capture_output=True, text=True)
    return None if result.returncode == 0 else (result.stderr.strip() or "bash -n failed")


def logical_commands(block: Block) -> list[Command]:
    """The block's commands in order; a compound command (if, for, a heredoc, ...) stays one command."""
    lines = block.text.splitlines()
    if re.search(r"<<-?\s*['\"]?\w", block.text) and "<<<" not in block.text:  # a heredoc: keep the block whole
        return [Command(block.line + 1, strip_comment(block.text).strip())]
    commands, pending, start = [], [], 0
    for i, line in enumerate(lines):
        if not pending:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            start = i
        pending.append(line)
        if line.rstrip().endswith("\\"):
            continue
        code = strip_comment("\n".join(pending)).strip()
        if code and bash_syntax_error(code) is not None and i + 1 < len(lines):
            continue  # an open if/for/quote: read on
        if code:
            commands.append(Command(block.line + 1 + start, code))
        pending = []
    if pending and strip_comment("\n".join(pending)).strip():
        commands.append(Command(block.line + 1 + start, strip_comment("\n".join(pending)).strip()))
    return commands


def flags(command: str) -> list[str]:
    """The command's flags (words that start with -), sorted: what a substitution must leave alone."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    return sorted(w.split("=")[0] for w in words if w.startswith("-"))


def substitute(command: str, fixtures: Path | str = "{fixtures}") -> str:
    """The command as run mode runs it (SUBSTITUTIONS applied); ValueError when a flag would change."""
    result, droppable = command, set()
    for sub in SUBSTITUTIONS:
        if re.search(sub.commands, command):
            result = re.sub(sub.pattern, sub.replacement.replace("{fixtures}", str(fixtures)), result)
            droppable |= set(sub.drops)
    kept = [flag for flag in flags(command) if flag not in droppable]
    if [flag for flag in flags(result) if flag not in droppable] != kept:
        raise ValueError(f"a substitution changed the flags of: {command}")
    return result


# ---------------------------------------------------------------------------------------------------- static checks


def simple_commands(code: str) -> list[list[str]]:
    """The simple commands of a shell command line: split at ; && || | & ( ) and newlines, without redirections."""
    lexer = shlex.shlex(code, posix=True, punctuation_chars="();<>|&\n")
    lexer.whitespace = " \t\r"
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:
        return []
    commands, current, skip_next = [], [], False
    for token in tokens:
        if skip_next:
            skip_next = False
        elif token and set(token) <= set("();<>|&\n"):
            if "<" in token or ">" in token:  # a redirection: drop its target and the fd before it (2>&1)
                if current and current[-1].isdigit():
                    current.pop()
                skip_next = True
            else:
                commands.append(current)
                current = []
        else:
            current.append(token)
    commands.append(current)
    return [argv for argv in map(_unwrap, commands) if argv]


def _unwrap(argv: list[str]) -> list[str]:
    """Without leading VAR=value assignments and wrappers (sudo, env, time, nohup, exec, timeout N)."""
    argv = list(argv)
    while argv:
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", argv[0]):
            argv.pop(0)
        elif argv[0] == "command" and any(a in ("-v", "-V") for a in argv[1:2]):
            return []  # `command -v X` looks X up, it does not run it
        elif argv[0] in ("sudo", "env", "time", "nohup", "exec", "command"):
            argv.pop(0)
            while argv and argv[0].startswith("-"):
                argv.pop(0)
        elif argv[0] in ("if", "then", "else", "elif", "do", "while", "until", "!", "{", "}", "fi", "done"):
            argv.pop(0)
        elif argv[0] == "timeout":
            argv.pop(0)
            while argv and argv[0].startswith("-"):
                argv.pop(0)
            argv = argv[1:]
        else:
            break
    return argv


class _Parsed(BaseException):
    """Raised by the intercepted parse_args: the command line was accepted (BaseException: main() must not catch it)."""


def argparse_error(main: Callable[[Sequence[str]], int], argv: Sequence[str]) -> str | None:
    """None when the program's real argparse parser accepts argv, else its error; nothing is run."""
    original = argparse.ArgumentParser.parse_args

    def intercept(self, args=None, namespace=None):
        original(self, args, namespace)
        raise _Parsed

    errors = io.StringIO()
    argparse.ArgumentParser.parse_args = intercept
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            main(list(argv))
    except _Parsed:
        return None
    except SystemExit as exc:
        if exc.code in (0, None):
            return None  # --help
        lines = errors.getvalue().strip().splitlines()
        return lines[-1] if lines else f"exit code {exc.code}"
    finally:
        argparse.ArgumentParser.parse_args = original
    return "the program returned without parsing its command line"


def _lane_seg_main() -> Callable:
    from lane_seg_ros.cli import main

    return main


def _core_main() -> Callable:
    from lane_seg_core.cli import main

    return main


@lru_cache(maxsize=None)
def launch_arguments() -> frozenset[str]:
    """DeclareLaunchArgument names of launch/lane_seg.launch.py, read with ast (no launch_ros needed)."""
    tree = ast.parse((REPO / "launch" / "lane_seg.launch.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if called == "DeclareLaunchArgument" and node.args and isinstance(node.args[0], ast.Constant):
                names.add(node.args[0].value)
    return frozenset(names)


@lru_cache(maxsize=None)
def node_parameters() -> frozenset[str]:
    """The node's parameters: lane_seg_ros/parameters.py SPECS, plus the one every rclpy node has."""
    from lane_seg_ros.parameters import SPECS

    return frozenset(SPECS) | {"use_sim_time"}


@lru_cache(maxsize=None)
def node_topics() -> frozenset[str]:
    """Topic names the node subscribes or publishes (create_subscription/create_publisher in node.py), read with ast."""
    tree = ast.parse((REPO / "lane_seg_ros" / "node.py").read_text())
    assigned: dict[str, list[ast.expr]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    assigned.setdefault(target.id, []).append(node.value)
    topics = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and getattr(node.func, "attr", None) in ("create_subscription", "create_publisher")
                and len(node.args) >= 2):
            name = node.args[1]
            values = assigned.get(name.id, []) if isinstance(name, ast.Name) else [name]
            for value in values:
                topics |= _string_results(value)
    return frozenset(topics)


def _string_results(expr: ast.expr) -> set[str]:
    """The strings an expression can evaluate to: a constant, or either branch of `a if test else b`."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return {expr.value}
    if isinstance(expr, ast.IfExp):
        return _string_results(expr.body) | _string_results(expr.orelse)
    return set()


@lru_cache(maxsize=None)
def installed_programs() -> frozenset[str]:
    """Executables `ros2 run lane_seg` finds: install(PROGRAMS ...) in CMakeLists.txt."""
    text = (REPO / "CMakeLists.txt").read_text()
    return frozenset(Path(p).name for m in re.finditer(r"install\(PROGRAMS([^)]*)DESTINATION", text)
                     for p in m.group(1).split())


@lru_cache(maxsize=None)
def make_targets_and_variables() -> tuple[frozenset[str], frozenset[str]]:
    """Targets and variables of the Makefile."""
    text = (REPO / "Makefile").read_text()
    targets = {m.group(1) for m in re.finditer(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", text, re.M) if not m.group(1).startswith(".")}
    variables = set(re.findall(r"\$\(([A-Z_][A-Z0-9_]*)\)", text)) | set(
        re.findall(r"^([A-Z_][A-Z0-9_]*)\s*[?:+]?=", text, re.M))
    return frozenset(targets), frozenset(variables)


def check_ros_args(args: Sequence[str], program: str = "lane_seg_node") -> list[str]:
    """Problems in lane_seg_node's arguments: only --ros-args, with known parameters, remaps and files."""
    problems, i, in_ros_args = [], 0, False
    while i < len(args):
        arg = args[i]
        value = args[i + 1] if i + 1 < len(args) else ""
        if arg == "--ros-args":
            in_ros_args, i = True, i + 1
        elif arg == "--":
            in_ros_args, i = False, i + 1
        elif not in_ros_args:
            problems.append(f"{program} takes no arguments outside --ros-args, got '{arg}'")
            i += 1
        elif arg in ("-p", "--param"):
            name = value.split(":=")[0].split(":")[-1]  # node:name:=value sets a parameter of one node
            if ":=" not in value:
                problems.append(f"-p expects NAME:=VALUE, got '{value}'")
            elif name not in node_parameters() and not name.startswith("qos_overrides."):
                problems.append(f"-p {value}: the node has no parameter '{name}' (lane_seg_ros/parameters.py)")
            i += 2
        elif arg in ("-r", "--remap"):
            source = value.split(":=")[0]
            source = source.split(":", 1)[1] if ":" in source and not source.startswith("/") else source
            if ":=" not in value:
                problems.append(f"-r expects FROM:=TO, got '{value}'")
            elif not source.startswith("__") and source.lstrip("~/") not in {t.lstrip("/") for t in node_topics()}:
                problems.append(f"-r {value}: the node has no topic '{source}' (it uses {', '.join(sorted(node_topics()))})")
            i += 2
        elif arg == "--params-file":
            problems += check_params_file(value)
            i += 2
        elif arg in ("--log-level", "-e", "--enclave", "--log-config-file"):
            i += 2
        elif arg in ("--disable-stdout-logs", "--disable-rosout-logs", "--disable-external-lib-logs",
                     "--enable-stdout-logs", "--enable-rosout-logs", "--enable-external-lib-logs"):
            i += 1
        else:
            problems.append(f"unknown --ros-args argument '{arg}'")
            i += 1
    return problems


def check_params_file(path: str) -> list[str]:
    """A parameters file in this repository (or the installed share/lane_seg copy of one): every name must exist."""
    candidates = [REPO / path, REPO / re.sub(r"^.*share/lane_seg/", "", path)]
    found = next((p for p in candidates if p.is_file()), None)
    return parameters_yaml_problems(found.read_text(), path) if found else []  # else: the reader's own file


def parameters_yaml_problems(text: str, where: str) -> list[str]:
    """Names under `ros__parameters` that the node does not declare (nested keys are joined with dots)."""
    import yaml

    def names(tree: dict, prefix: str = "") -> list[str]:
        out = []
        for key, value in tree.items():
            out += names(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]
        return out

    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        return [f"{where}: not valid YAML: {str(exc).splitlines()[0]}"]
    problems = []
    for node_name, section in document.items():
        parameters = (section or {}).get("ros__parameters", {}) if isinstance(section, dict) else {}
        for name in names(parameters or {}):
            if name not in node_parameters():
                problems.append(f"{where}: the node has no parameter '{name}' (section {node_name})")
    return problems


def check_ros2(args: Sequence[str]) -> list[str]:
    """ros2 launch / run / param / interface with this package, checked against its files."""
    if not args:
        return []
    verb, rest = args[0], list(args[1:])
    if verb == "launch":
        words = [a for a in rest if not a.startswith("-") and ":=" not in a]
        if not words or (words[0] != "lane_seg" and not words[0].endswith("lane_seg.launch.py")):
            return []
        if words[0] == "lane_seg" and (len(words) < 2 or not (REPO / "launch" / words[1]).is_file()):
            return [f"ros2 launch lane_seg: no launch file '{words[1] if len(words) > 1 else ''}' in launch/"]
        unknown = [a.split(":=")[0] for a in rest if ":=" in a and a.split(":=")[0] not in launch_arguments()]
        return [f"launch argument '{name}' is not declared in launch/lane_seg.launch.py (declared: "
                f"{', '.join(sorted(launch_arguments()))})" for name in unknown]
    if verb == "run":
        words = [a for a in rest if not a.startswith("-")]
        if len(words) < 2 or words[0] != "lane_seg":
            return []
        program, tail = words[1], rest[rest.index(words[1]) + 1 :]
        if program not in installed_programs():
            return [f"ros2 run lane_seg {program}: not installed by CMakeLists.txt ({', '.join(sorted(installed_programs()))})"]
        if program == "lane-seg":
            error = argparse_error(_lane_seg_main(), tail)
            return [error] if error else []
        return check_ros_args(tail, program)
    if verb == "param" and len(rest) >= 3 and rest[0] in ("set", "get", "describe"):
        node, name = rest[1], rest[2]
        if node.rstrip("/").split("/")[-1] == "lane_seg" and name not in node_parameters():
            return [f"ros2 param {rest[0]} {node} {name}: the node has no parameter '{name}'"]
    if verb == "interface" and len(rest) >= 2 and rest[0] == "show" and rest[1].startswith("lane_seg/"):
        if not (REPO / "msg" / (rest[1].split("/")[-1] + ".msg")).is_file():
            return [f"ros2 interface show {rest[1]}: no such message in msg/"]
    return []


def check_make(args: Sequence[str]) -> list[str]:
    """make TARGET VAR=value: the targets and variables must be the Makefile's."""
    if any(a in ("-C", "-f") or a.startswith(("--directory", "--file")) for a in args):
        return []
    targets, variables = make_targets_and_variables()
    problems = []
    for arg in args:
        if arg.startswith("-"):
            continue
        if "=" in arg:
            name = arg.split("=")[0]
            if name not in variables:
                problems.append(f"make {arg}: the Makefile does not use {name}")
        elif arg not in targets:
            problems.append(f"make {arg}: no such target in the Makefile ({', '.join(sorted(targets))})")
    return problems


def check_python(args: Sequence[str]) -> list[str]:
    """python -m lane_seg_core.cli / lane_seg_ros.cli ARGS (parsed), or python SCRIPT (must exist here)."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "-m" and i + 1 < len(args):
            module, tail = args[i + 1], args[i + 2 :]
            main = {"lane_seg_core.cli": _core_main, "lane_seg_ros.cli": _lane_seg_main}.get(module)
            error = argparse_error(main(), tail) if main else None
            return [f"python -m {module}: {error}"] if error else []
        if arg == "-c":
            return []
        if arg.startswith("-"):
            i += 1
            continue
        script = Path(arg)
        if not script.is_absolute() and (REPO / script.parts[0]).exists() and not (REPO / script).is_file():
            return [f"python {arg}: no such file in the repository"]
        return []
    return []


def check_torchrun(args: Sequence[str]) -> list[str]:
    """torchrun's own options (its real parser), then the training command (lane_seg_core.cli's parser)."""
    from torch.distributed.run import get_args_parser

    error = argparse_error(lambda argv: get_args_parser().parse_args(argv), args)
    if error:
        return [f"torchrun: {error}"]
    for i, arg in enumerate(args):
        if arg == "lane_seg_core.cli" or arg.endswith("lane_seg_core/cli.py"):
            error = argparse_error(_core_main(), args[i + 1 :])
            return [f"torchrun ... lane_seg_core.cli: {error}"] if error else []
    return []


def check_command(argv: Sequence[str]) -> list[str]:
    """Problems of one simple command the project owns; [] for everything else."""
    name = os.path.basename(argv[0])
    if name == "lane-seg":
        error = argparse_error(_lane_seg_main(), argv[1:])
        return [error] if error else []
    if name == "lane_seg_node":
        return check_ros_args(argv[1:])
    if re.fullmatch(r"python(3(\.\d+)?)?", name):
        return check_python(argv[1:])
    if name == "torchrun":
        return check_torchrun(argv[1:])
    if name == "ros2":
        return check_ros2(argv[1:])
    if name == "make":
        return check_make(argv[1:])
    return []


def static_problems(block: Block) -> list[str]:
    """What static mode finds wrong with a block (bash -n and the project's commands, or python's compiler)."""
    if block.language == "yaml":
        return parameters_yaml_problems(block.text, "yaml")
    if block.language == "python":
        try:
            compile("\n" * block.line + block.text, block.where.split(":")[0], "exec")
        except SyntaxError as exc:
            return [f"python: {exc.msg} (line {exc.lineno})"]
        return []
    error = bash_syntax_error(block.text)
    if error:
        return [f"bash -n: {error}"]
    problems = []
    if block.mode == "run" and RUNS_THE_TESTS.search(strip_comment(block.text)):
        problems.append("runs the test suite, which runs this checker: mark the block <!-- check: static: REASON -->")
    for command in logical_commands(block):
        for argv in simple_commands(command.text):
            problems += [f"line {command.line}: {p}" for p in check_command(argv)]
    return problems


# ---------------------------------------------------------------------------------------------------- run mode


@dataclass
class Scratch:
    """A scratch copy of the repository where one file's blocks run."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)
    python_blocks: list[Block] = field(default_factory=list)
    domain_lease: object | None = None  # holds ROS_DOMAIN_ID against other lane_seg runs on this machine

    @property
    def fixtures(self) -> Path:
        return self.root / "_fixtures"

    @classmethod
    def create(cls) -> "Scratch":
        root = Path(tempfile.mkdtemp(prefix="check_docs_"))
        for entry in REPO.iterdir():
            if entry.name in NOT_COPIED or entry.name.endswith(".egg-info"):
                continue
            if entry.is_dir():
                shutil.copytree(entry, root / entry.name, symlinks=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(entry, root / entry.name)
        (root / ".venv").symlink_to(REPO / ".venv")
        (root / "_fixtures").mkdir()
        try:
            from lane_seg_ros.domain import reserve_domain_id

            lease = reserve_domain_id()
            domain_id = lease.domain_id
        except ImportError:
            lease, domain_id = None, 1 + os.getpid() % 100
        env = dict(os.environ)
        env.update({
            GUARD: "1",
            "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
            "ROS_DOMAIN_ID": str(domain_id),
            "ROS_LOG_DIR": str(root / "_ros_log"),
            "PATH": f"{root / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "VIRTUAL_ENV": str(root / ".venv"),
            "PYTHONUNBUFFERED": "1",
            # One torch/OpenMP thread: on a CPU shared with other jobs torch's default pool can run many times slower.
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        })
        env.pop("PYTHONHOME", None)
        return cls(root, env, domain_lease=lease)

    def remove(self) -> None:
        """Delete the directory and give the ROS domain back."""
        shutil.rmtree(self.root, ignore_errors=True)
        self.release_domain()

    def release_domain(self) -> None:
        if self.domain_lease is not None:
            self.domain_lease.release()
            self.domain_lease = None

    def make_fixtures(self, text: str) -> None:
        """Make the fixtures `text` names (by their path under _fixtures/, or by name in the scratch root)."""
        for name, (make, location) in FIXTURES.items():
            if "{fixtures}" in location:
                target = Path(location.replace("{fixtures}", str(self.fixtures)))
                named = str(target) in text
            else:
                target = self.root / location
                named = re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", text) is not None
            if named and not target.exists():
                make(self.fixtures, self.root, self.env)


@dataclass
class Outcome:
    ok: bool
    detail: str = ""
    seconds: float = 0.0


def run_bash(block: Block, scratch: Scratch, timeout: float) -> Outcome:
    """Run a bash block's commands in order in one bash process; stop at the first that fails."""
    commands = [Command(c.line, substitute(c.text, scratch.fixtures)) for c in logical_commands(block)]
    scratch.make_fixtures("\n".join(c.text for c in commands))
    progress = scratch.root / "_progress"
    script = ["set -o pipefail"]
    for i, command in enumerate(commands):
        script += [f"echo {i} > {shlex.quote(str(progress))}; echo {OUTPUT_MARK}; echo {OUTPUT_MARK} >&2", command.text,
                   "__check_docs_rc=$?; [ $__check_docs_rc -eq 0 ] || exit $__check_docs_rc"]
    progress.write_text("0\n")
    result, seconds = _run(["bash", "-c", "\n".join(script)], scratch, timeout)
    if result is None:
        failed = commands[int(progress.read_text().strip() or 0)]
        return Outcome(False, f"timed out after {timeout:.0f} s: {failed.text}", seconds)
    if result.returncode == 0:
        return Outcome(True, seconds=seconds)
    failed = commands[int(progress.read_text().strip() or 0)]
    original = next((c.text for c in logical_commands(block) if c.line == failed.line), failed.text)
    shown = original if original == failed.text else f"{original}\n    (ran as: {failed.text})"
    return Outcome(False, f"line {failed.line} exit {result.returncode}: {shown}\n{_tail(result.stderr, result.stdout)}",
                   seconds)


RUNNER = '''\
import json, sys
spec = json.load(open(sys.argv[1]))
ns = {"__name__": "__doc_check__", "__builtins__": __builtins__}
exec(compile(spec["prelude"], "<check_docs prelude>", "exec"), ns)
for path, line, source in spec["blocks"]:
    exec(compile("\\n" * line + source, path, "exec"), ns)
'''


def run_python(block: Block, scratch: Scratch, timeout: float) -> Outcome:
    """Run the file's python blocks up to this one in a fresh interpreter, after PRELUDE."""
    scratch.python_blocks.append(block)
    scratch.make_fixtures(block.text)
    spec = scratch.root / "_python_blocks.json"
    spec.write_text(json.dumps({"prelude": PRELUDE,
                                "blocks": [(_shown(b.path), b.line, b.text) for b in scratch.python_blocks]}))
    result, seconds = _run([str(scratch.root / ".venv" / "bin" / "python"), "-c", RUNNER, str(spec)], scratch, timeout)
    if result is None:
        return Outcome(False, f"timed out after {timeout:.0f} s", seconds)
    if result.returncode == 0:
        return Outcome(True, seconds=seconds)
    return Outcome(False, f"python exit {result.returncode}\n{_tail(result.stderr, result.stdout)}", seconds)


def _run(argv: Sequence[str], scratch: Scratch, timeout: float) -> tuple[subprocess.CompletedProcess | None, float]:
    """Run in the scratch directory in a process group of its own; (None, s) on timeout.

    Output goes to files, not pipes, so a background process the block left behind cannot keep the checker
    waiting; whatever is left of the group when the command ends is stopped (SIGINT, then SIGKILL).
    """
    start = time.monotonic()
    out_path, err_path = scratch.root / "_stdout", scratch.root / "_stderr"
    with out_path.open("w") as stdout, err_path.open("w") as stderr:
        process = subprocess.Popen(argv, cwd=scratch.root, env=scratch.env, stdout=stdout, stderr=stderr,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            returncode: int | None = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            returncode = None
        finally:  # also when the checker itself is stopped (SIGTERM, Ctrl-C): the block's group goes with it
            _stop_group(process.pid)
            process.wait()
    seconds = time.monotonic() - start
    if returncode is None:
        return None, seconds
    read = lambda path: path.read_text(errors="replace")  # noqa: E731
    return subprocess.CompletedProcess(argv, returncode, read(out_path), read(err_path)), seconds


def _stop_group(pgid: int) -> None:
    """Stop what is left of a process group: SIGINT (a ROS node shuts down cleanly), then SIGKILL after 5 s."""
    for sig, grace in ((signal.SIGINT, 5.0), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def _tail(*outputs: str) -> str:
    """The last lines of the first non-empty output of the last command (progress bars' \\r count as line ends)."""
    outputs = tuple((o or "").split(OUTPUT_MARK)[-1] for o in outputs)
    text = next((o for o in outputs if o.strip()), "")
    lines = [line for line in re.split(r"[\r\n]+", text) if line.strip()]
    return "\n".join("    | " + line for line in lines[-TAIL_LINES:])


# ---------------------------------------------------------------------------------------------------- driver


TABLE_ROW = re.compile(r"^\|.*\|\s*$")


def parameter_tables(path: Path) -> list[tuple[int, list[str], list[tuple[int, str]]]]:
    """The node-parameter tables of a markdown file: (heading line, column headings, [(line, row)]).

    A parameter table is one whose first heading is `parameter` and which has `type` and `default` columns.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    tables, i = [], 0
    while i < len(lines):
        cells = [c.strip() for c in lines[i].strip().strip("|").split("|")] if TABLE_ROW.match(lines[i]) else []
        if cells[:1] == ["parameter"] and {"type", "default"} <= set(cells) and i + 1 < len(lines):
            rows, j = [], i + 2  # after the heading and the |---| line
            while j < len(lines) and TABLE_ROW.match(lines[j]):
                rows.append((j + 1, lines[j].rstrip()))
                j += 1
            tables.append((i + 1, cells, rows))
            i = j
        else:
            i += 1
    return tables


def parameter_table_problems(path: Path) -> list[tuple[int, str]]:
    """(line, problem) for each row of a parameter table that is not the one lane_seg_ros/parameters.py gives."""
    from lane_seg_ros.parameters import SPECS, table_row

    problems = []
    for heading, columns, rows in parameter_tables(path):
        listed = set()
        for line, row in rows:
            name = row.strip("| ").split("|")[0].strip().strip("`")
            listed.add(name)
            if name not in SPECS:
                problems.append((line, f"the node has no parameter '{name}' (lane_seg_ros/parameters.py)"))
            elif _cells(row) != _cells(expected := table_row(SPECS[name], columns)):
                problems.append((line, f"row of `{name}` differs from the parameter's declaration; it reads:\n"
                                       f"      {expected}"))
        missing = [name for name in SPECS if name not in listed]
        if missing:
            problems.append((heading, f"the table lacks {', '.join(missing)}"))
    return problems


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def write_parameter_tables(path: Path) -> int:
    """Rewrite the rows of the file's parameter tables from lane_seg_ros/parameters.py; the number of tables."""
    from lane_seg_ros.parameters import SPECS, table_row

    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    tables = parameter_tables(path)
    for heading, columns, rows in reversed(tables):
        first, last = rows[0][0] - 1 if rows else heading + 1, rows[-1][0] if rows else heading + 1
        lines[first:last] = [table_row(spec, columns) + "\n" for spec in SPECS.values()]
    path.write_text("".join(lines), encoding="utf-8")
    return len(tables)


# ------------------------------------------------------------------------------------------- references

LINK = re.compile(r"\]\(([^)\s]*)\)")
# `README.md, "Measured"`, `README.md ("Measured")`, `README, "Measured"`: a README section cited by its title
README_SECTION = re.compile(r"\bREADME(?:\.md)?,?\s*\(?\s*\"([^\"]+)\"")
# a figure as the README states it: `15.8 ms`, `17-19 ms`, `23.1 Hz`, `5.9 cm`, `Accuracy 0.972`, `FP 0.046`
FIGURE = re.compile(r"(?<![\w.-])\d[\d,]*(?:\.\d+)?(?:-\d[\d,]*(?:\.\d+)?)?\s?(?:ms|Hz|cm|min)\b"
                    r"|\b(?:Accuracy|FP|FN|F1) \d(?:\.\d+)?")


def heading_titles(path: Path) -> dict[str, str]:
    """{anchor: title} of a markdown file's headings (GitHub's anchors: lower case, punctuation dropped)."""
    titles = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if match := re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line):
            title = match.group(1).replace("`", "")
            titles[re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")] = title
    return titles


def reference_problems(path: Path) -> list[tuple[int, str]]:
    """(line, problem) for links to missing files or headings, README sections that do not exist, and figures
    cited from README.md that README.md does not state."""
    text = path.read_text(encoding="utf-8")
    readme = REPO / "README.md"
    readme_text = " ".join(readme.read_text(encoding="utf-8").split())
    readme_sections = set(heading_titles(readme).values())
    problems = []

    def line_of(position: int) -> int:
        return text.count("\n", 0, position) + 1

    for match in LINK.finditer(text):
        target, _, anchor = match.group(1).partition("#")
        if re.match(r"^[a-z]+:", target):  # http:, mailto:
            continue
        linked = (path.parent / target).resolve() if target else path
        if not linked.exists():
            problems.append((line_of(match.start()), f"link to {target}: no such file"))
        elif anchor and linked.suffix == ".md" and anchor not in heading_titles(linked):
            problems.append((line_of(match.start()), f"link to {target or path.name}#{anchor}: no such heading there"))
    for match in README_SECTION.finditer(text):
        title = " ".join(match.group(1).split())
        if title not in readme_sections:
            problems.append((line_of(match.start()), f'README.md has no section "{title}"; its sections: '
                                                     + ", ".join(f'"{t}"' for t in sorted(readme_sections))))
    if path.resolve() != readme.resolve():
        for number, line in enumerate(text.splitlines(), 1):
            if "README" not in line:
                continue
            for figure in FIGURE.findall(line):
                if figure not in readme_text:
                    problems.append((number, f"{figure!r} is cited from README.md, which does not state it"))
    return problems


def check_file(path: Path, static_only: bool, timeout: float, keep: bool, out=None) -> bool:
    """Check one markdown file's parameter tables and blocks in order; one line per block; True when all are fine."""
    out = out or sys.stdout
    references_and_tables_ok = True
    for line, problem in parameter_table_problems(path):
        print(f"{_shown(path)}:{line} table FAILED: {problem}", file=out)
        references_and_tables_ok = False
    for line, problem in reference_problems(path):
        print(f"{_shown(path)}:{line} reference FAILED: {problem}", file=out)
        references_and_tables_ok = False
    blocks = parse_blocks(path)
    scratch: Scratch | None = None
    failed_at: int | None = None
    all_ok = True
    try:
        for block in blocks:
            if block.mode == "skip":
                continue
            if block.mode == "error":
                print(f"{block.where} {block.language or '(none)'} FAILED: {block.problem}", file=out)
                all_ok = False
                continue
            problems = static_problems(block)
            runs = block.mode == "run" and not static_only and failed_at is None
            if problems:
                mode = "run" if block.mode == "run" else "static"
                print(f"{block.where} {mode} FAILED (static check):\n" + "\n".join(f"    {p}" for p in problems), file=out)
                all_ok = False
                if block.mode == "run":
                    failed_at = failed_at or block.line
                continue
            if not runs:
                note = f" (not run: the block at line {failed_at} failed)" if block.mode == "run" and failed_at else ""
                note = " (--static-only)" if block.mode == "run" and static_only else note
                print(f"{block.where} static ok{note}", file=out, flush=True)
                continue
            scratch = scratch or Scratch.create()
            try:
                outcome = (run_python if block.language == "python" else run_bash)(block, scratch, timeout)
            except (RuntimeError, ValueError) as exc:
                outcome = Outcome(False, str(exc))
            if outcome.ok:
                print(f"{block.where} run ok ({outcome.seconds:.1f} s)", file=out, flush=True)
            else:
                print(f"{block.where} run FAILED ({outcome.seconds:.1f} s): {outcome.detail}", file=out, flush=True)
                all_ok = False
                failed_at = block.line
    finally:
        if scratch is not None:
            if keep:
                scratch.release_domain()
                print(f"{_shown(path)}: scratch directory kept at {scratch.root}", file=out)
            else:
                scratch.remove()
    return all_ok and references_and_tables_ok


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM ends the checker like Ctrl-C: the running block's process group is stopped, the scratch removed."""
    raise SystemExit(128 + signum)


def default_files() -> list[Path]:
    return [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check that the commands in README.md and docs/*.md run as written.")
    parser.add_argument("files", nargs="*", type=Path, help="markdown files (default: README.md and docs/*.md)")
    parser.add_argument("--list", action="store_true", help="print each block and how it is checked; run nothing")
    parser.add_argument("--static-only", action="store_true", help="check every block statically; run nothing")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per block (default 900)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directories and print where they are")
    parser.add_argument("--write-tables", action="store_true",
                        help="rewrite the node-parameter tables from lane_seg_ros/parameters.py; run nothing")
    args = parser.parse_args(argv)
    if os.environ.get(GUARD):
        print("check_docs.py: refusing to run inside a block it is checking", file=sys.stderr)
        return 2
    files = args.files or default_files()
    missing = [f for f in files if not f.is_file()]
    if missing:
        print(f"check_docs.py: no such file: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    if args.write_tables:
        for path in files:
            print(f"{_shown(path)}: {write_parameter_tables(path)} parameter table(s) written")
        return 0
    if args.list:
        for path in files:
            for block in parse_blocks(path):
                reason = {"static": f": {block.static_reason or 'node parameters, checked against SPECS'}",
                          "error": f": {block.problem}"}.get(block.mode, "")
                print(f"{block.where} {block.language or '(none)'} {block.mode}{reason}")
        return 0
    ok = True
    for path in files:
        ok &= check_file(path, args.static_only, args.timeout, args.keep)
    return 0 if ok else 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    sys.exit(main())
