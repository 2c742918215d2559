"""Every command in README.md and docs/*.md runs as written (tools/check_docs.py), and the checker's checks are honest."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import time
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHECKER = REPO / "tools" / "check_docs.py"
BLOCK_TIMEOUT_S = 240  # one block; the slowest takes about 20 s on an idle 2-core machine
GUIDE_TIMEOUT_S = 480  # one file; the slowest takes about a minute
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def load_checker() -> types.ModuleType:
    """tools/check_docs.py as a module (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location("check_docs", CHECKER)
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_docs"] = module
    spec.loader.exec_module(module)
    return module


check_docs = load_checker()
pytestmark = pytest.mark.skipif(bool(os.environ.get(check_docs.GUARD)),
                                reason="inside a block the docs checker runs: the checker must not run itself")


def run_checker(doc: Path, *options: str) -> tuple[int, str]:
    """Run the checker on `doc` in this process; (exit code, output)."""
    from contextlib import redirect_stdout
    from io import StringIO

    out = StringIO()
    with redirect_stdout(out):
        code = check_docs.main([*options, str(doc)])
    return code, out.getvalue()


def check(tmp_path: Path, markdown: str, *options: str) -> tuple[int, str]:
    """Run the checker in this process on a markdown file made of `markdown`; (exit code, output)."""
    doc = tmp_path / "doc.md"
    doc.write_text(markdown)
    return run_checker(doc, *options)


# ------------------------------------------------------------------------------------------------ the guide itself


@pytest.mark.slow
@pytest.mark.timeout(GUIDE_TIMEOUT_S)
@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(REPO)) for d in DOCS])
def test_the_commands_of_the_guide_run_as_written(doc: Path) -> None:
    # In this process, which has torch imported already (a checker process per file spent 3 s importing it);
    # each block still runs in a process group of its own, stopped when the block ends or this test times out.
    start = time.monotonic()
    code, out = run_checker(doc, "--timeout", str(BLOCK_TIMEOUT_S))
    assert code == 0, out
    print(f"{doc.name}: {time.monotonic() - start:.0f} s\n{out}")


def test_the_vehicle_guide_lists_every_parameter_and_launch_argument():
    text = (REPO / "docs" / "vehicle.md").read_text()
    missing = [name for name in check_docs.node_parameters() - {"use_sim_time"} if f"| `{name}` |" not in text]
    assert not missing, f"docs/vehicle.md has no parameter table row for {missing}"
    missing = [name for name in check_docs.launch_arguments() if f"| `{name}` |" not in text]
    assert not missing, f"docs/vehicle.md has no launch argument table row for {missing}"


def test_the_parameters_file_states_each_range_as_the_parameter_declares_it():
    """config/lane_seg.yaml's comment above a bounded parameter gives its range as lane_seg_ros/parameters.py does."""
    from lane_seg_ros.parameters import SPECS

    lines = (REPO / "config" / "lane_seg.yaml").read_text().splitlines()
    path, checked = [], 0
    for i, line in enumerate(lines):
        key = re.match(r"^(\s*)#?\s*([a-z_]+):", line)
        if not key or line.strip().startswith("# ") and not re.match(r"^\s*# [a-z_]+: ", line):
            continue
        depth = (len(key.group(1)) - 4) // 2  # under /**: ros__parameters:
        if depth < 0:
            continue
        path[depth:] = [key.group(2)]
        spec = SPECS.get(".".join(path))
        if spec is None or spec.bounds is None:
            continue
        comment = []
        j = i - 1
        while j >= 0 and re.match(r"^\s*[a-z_]+: ", lines[j]) and not comment:  # keys sharing one comment (x/y)
            j -= 1
        while j >= 0 and lines[j].strip().startswith("#") and not re.match(r"^\s*# [a-z_]+: ", lines[j]):
            comment.insert(0, lines[j].strip())
            j -= 1
        assert str(spec.bounds) in " ".join(comment), f"line {i + 1}: `{spec.name}` should say {spec.bounds}: {comment}"
        checked += 1
    assert checked >= 10, checked


def test_a_parameter_table_row_that_differs_from_the_declaration_is_named_with_the_right_row(tmp_path):
    from lane_seg_ros.parameters import SPECS, table_row

    columns = ["parameter", "type", "default", "run time", ""]
    rows = [table_row(spec, columns) for spec in SPECS.values()]
    heading = "| parameter | type | default | run time | |\n|---|---|---|---|---|\n"
    code, out = check(tmp_path, heading + "\n".join(rows) + "\n", "--static-only")
    assert code == 0, out
    wrong = [row.replace("| 1.5 |", "| 1.4 |") if "`ground.height`" in row else row for row in rows[:-1]]
    code, out = check(tmp_path, heading + "\n".join(wrong) + "\n| `ground.hieght` | double | 1.5 | yes | x |\n",
                      "--static-only")
    assert code == 1, out
    assert "row of `ground.height` differs from the parameter's declaration" in out and table_row(
        SPECS["ground.height"], columns) in out
    assert "the node has no parameter 'ground.hieght'" in out and f"the table lacks {rows[-1].split('`')[1]}" in out


def test_dangling_links_readme_sections_and_figures_not_in_the_readme_fail(tmp_path):
    (tmp_path / "other.md").write_text("# Other\n\n## Some part\n")
    stated = check_docs.FIGURE.search((REPO / "README.md").read_text()).group(0)  # a figure the README states
    good = ('See [the part](other.md#some-part) and [here](#a-heading).\n\n# A heading\n\n'
            f'README.md, "Measured", gives the figures. README.md ("Measured") gives {stated} per frame.\n')
    code, out = check(tmp_path, good, "--static-only")
    assert code == 0, out
    bad = ('See [the part](other.md#no-part), [gone](missing.md) and [here](#nowhere).\n\n'
           'README.md, "Per-frame\nspeed", gives 17-19 ms per frame; README.md has Accuracy 0.123.\n')
    code, out = check(tmp_path, bad, "--static-only")
    assert code == 1, out
    for problem in ("doc.md:1 reference FAILED: link to other.md#no-part: no such heading there",
                    "doc.md:1 reference FAILED: link to missing.md: no such file",
                    "doc.md:1 reference FAILED: link to doc.md#nowhere: no such heading there",
                    'doc.md:3 reference FAILED: README.md has no section "Per-frame speed"; its sections: ',
                    "doc.md:4 reference FAILED: '17-19 ms' is cited from README.md, which does not state it",
                    "doc.md:4 reference FAILED: 'Accuracy 0.123' is cited from README.md, which does not state it"):
        assert problem in out, (problem, out)


@pytest.mark.parametrize("path", [*DOCS, REPO / "package.xml"], ids=lambda p: p.name if p.parent == REPO else str(p.relative_to(REPO)))
def test_the_guide_and_package_xml_cite_only_what_exists(path):
    assert check_docs.reference_problems(path) == []


# ------------------------------------------------------------------------------------------------ static checks


def test_an_unknown_lane_seg_flag_fails_statically_and_a_known_one_passes(tmp_path):
    code, out = check(tmp_path, "<!-- check: static: an example -->\n```bash\n"
                                ".venv/bin/lane-seg eval --data d --checkpoint c.pt --lane-threshold 0.8\n```\n")
    assert code == 0, out
    code, out = check(tmp_path, "<!-- check: static: an example -->\n```bash\n"
                                "lane-seg train --data d --out o --no-such-flag\n```\n")
    assert code == 1 and "unrecognized arguments: --no-such-flag" in out, out
    code, out = check(tmp_path, "<!-- check: static: x -->\n```bash\nlane-seg tarin --data d\n```\n")
    assert code == 1 and "invalid choice: 'tarin'" in out, out


def test_torchrun_arguments_are_parsed_by_torchrun_and_the_trainer(tmp_path):
    good = "torchrun --nproc_per_node 2 -m lane_seg_core.cli train --data d --out o --epochs 3"
    code, out = check(tmp_path, f"<!-- check: static: GPUs -->\n```bash\n{good}\n```\n")
    assert code == 0, out
    code, out = check(tmp_path, f"<!-- check: static: GPUs -->\n```bash\n{good} --epoch-count 3\n```\n")
    assert code == 1 and "--epoch-count" in out, out


def test_ros_commands_are_checked_against_the_launch_file_parameters_topics_and_makefile(tmp_path):
    code, out = check(tmp_path, "<!-- check: static: ros -->\n```bash\n"
                                "ros2 launch lane_seg lane_seg.launch.py image_topic:=/a namespace:=front use_rviz:=true\n"
                                "ros2 run lane_seg lane_seg_node --ros-args --params-file config/lane_seg.yaml "
                                "-p ground.height:=1.4 -r image:=/a -r camera_info:=/b\n"
                                "ros2 param set /front/lane_seg lane_threshold 0.8\n"
                                "make demo BAG=drive\n```\n")
    assert code == 0, out
    code, out = check(tmp_path, "<!-- check: static: ros -->\n```bash\n"
                                "ros2 launch lane_seg lane_seg.launch.py image:=/a\n"
                                "ros2 run lane_seg lane_seg_node --ros-args -p ground.hieght:=1.4 -r imag:=/a\n"
                                "ros2 param set /lane_seg threshold 0.8\n"
                                "make tests JOBS=2\n```\n")
    assert code == 1, out
    for expected in ("launch argument 'image'", "'ground.hieght'", "no topic 'imag'", "no parameter 'threshold'",
                     "make tests: no such target", "does not use JOBS"):
        assert expected in out, out


def test_yaml_node_parameters_are_checked(tmp_path):
    code, out = check(tmp_path, "```yaml\n/**:\n  ros__parameters:\n    ground:\n      hieght: 1.2\n```\n")
    assert code == 1 and "ground.hieght" in out, out


def test_shell_fences_other_than_bash_and_bare_fences_are_refused(tmp_path):
    for fence in ("sh", "shell", "console", ""):
        code, out = check(tmp_path, f"```{fence}\nls\n```\n")
        assert code == 1 and "FAILED" in out, (fence, out)
    code, out = check(tmp_path, "```text\nlane-seg --no-such-flag\n```\n\n```cpp\nint main() {}\n```\n")
    assert code == 0, out


def test_a_marker_needs_a_reason_and_must_be_static(tmp_path):
    for marker in ("<!-- check: static: -->", "<!-- check: skip -->"):
        code, out = check(tmp_path, f"{marker}\n```bash\ntrue\n```\n")
        assert code == 1 and "marker" in out, (marker, out)


def test_a_block_that_runs_the_test_suite_is_refused(tmp_path):
    code, out = check(tmp_path, "```bash\nmake test\n```\n", "--static-only")
    assert code == 1 and "runs the test suite" in out, out


def test_the_checker_refuses_to_run_inside_a_checked_block(tmp_path, monkeypatch):
    monkeypatch.setenv(check_docs.GUARD, "1")
    code, _ = check(tmp_path, "```bash\ntrue\n```\n")
    assert code == 2


# ------------------------------------------------------------------------------------------------ run mode


def test_a_failing_command_fails_its_block_and_later_blocks_are_not_run(tmp_path):
    code, out = check(tmp_path, "```bash\necho one\nfalse && echo two   # a failing `a` in `a && b`\n"
                                "touch never\n```\n\n```bash\ntouch skipped\n```\n")
    assert code == 1, out
    assert "doc.md:1 run FAILED" in out and "line 3 exit 1: false && echo two" in out, out
    assert "doc.md:7 static ok (not run: the block at line 1 failed)" in out, out
    code, out = check(tmp_path, "```bash\nfalse | cat\n```\n")
    assert code == 1, out


def test_blocks_run_in_order_in_one_scratch_directory_with_localhost_discovery(tmp_path):
    code, out = check(tmp_path, "```bash\ncd lane_seg_core && ls weights > ../listing.txt  # a comment\n"
                                "test \"$ROS_AUTOMATIC_DISCOVERY_RANGE\" = LOCALHOST\n"
                                "echo one \\\n  two > ../continued.txt\n```\n\n"
                                "```bash\ngrep -q lane_seg_synth.pt listing.txt\ngrep -qx 'one two' continued.txt\n"
                                "test -x .venv/bin/lane-seg && command -v lane-seg\n```\n")
    assert code == 0, out


def test_a_background_process_left_behind_is_stopped_and_does_not_hold_the_check(tmp_path):
    start = time.monotonic()
    code, out = check(tmp_path, "```bash\nsleep 300 &\necho started\n```\n")
    assert code == 0, out
    assert time.monotonic() - start < 30


def test_python_blocks_run_in_order_with_the_prelude_and_a_failure_fails(tmp_path):
    code, out = check(tmp_path, "```python\nshape = rgb_image.shape\n"
                                "if __name__ == '__main__':\n    raise SystemExit('the guard must keep this from running')\n"
                                "```\n\n```python\nassert shape == (720, 1280, 3) and len(camera_info.k) == 9\n```\n")
    assert code == 0, out
    code, out = check(tmp_path, "```python\nx = 1\n```\n\n```python\nassert x == 2, 'x is not 2'\n```\n")
    assert code == 1 and "x is not 2" in out and "doc.md" in out, out


def test_substitutions_shrink_sizes_and_move_data_but_never_touch_flags():
    command = ("lane-seg train --data /data/tuSimple/train_set --out runs/x --epochs 60 --batch-size 16 "
               "--img-size 512 256 --device cuda --pretrained /models/vgg16_bn-6c64b313.pth --amp")
    ran = check_docs.substitute(command, "/fx")
    assert ran == ("lane-seg train --data /fx/tuSimple/train_set --out runs/x --epochs 1 --batch-size 2 "
                   "--img-size 256 128 --device cpu --pretrained /fx/vgg16_bn-6c64b313.pth --amp")
    assert check_docs.flags(ran) == check_docs.flags(command)


def test_a_full_width_training_runs_at_the_small_width_without_the_imagenet_weights_only():
    command = ("lane-seg train --data d --out o --width 1.0 --pretrained /data/models/vgg16_bn-6c64b313.pth "
               "--amp --epochs 60 --val-frames 358")
    ran = check_docs.substitute(command, "/fx")
    assert ran == "lane-seg train --data d --out o --width 0.125 --amp --epochs 1 --val-frames 358"
    assert set(check_docs.flags(command)) - set(check_docs.flags(ran)) == {"--pretrained"}
    # at the width the weights fit (none given), --pretrained stays, and so does every other flag elsewhere
    assert "--pretrained /fx/" in check_docs.substitute("lane-seg train --data d --out o --pretrained /m/vgg16_bn-6c64b313.pth",
                                                        "/fx")
    assert check_docs.substitute("lane-seg eval --data d --width 1.0 --pretrained x") == \
        "lane-seg eval --data d --width 1.0 --pretrained x"
    assert check_docs.substitute("lane-seg synth --out d --count 3000", "/fx") == "lane-seg synth --out d --count 8"
    assert check_docs.substitute("echo --count 3000", "/fx") == "echo --count 3000"  # only in the commands listed


def test_a_substitution_that_would_drop_a_flag_is_an_error(monkeypatch):
    bad = check_docs.Substitution(r" --amp", "", r".", "wrong: removes a flag")
    monkeypatch.setattr(check_docs, "SUBSTITUTIONS", (bad,))
    with pytest.raises(ValueError, match="changed the flags"):
        check_docs.substitute("lane-seg train --data d --out o --amp")


def test_list_shows_each_block_and_its_mode(tmp_path):
    code, out = check(tmp_path, "```bash\ntrue\n```\n\n<!-- check: static: needs a GPU -->\n```bash\ntrue\n```\n"
                                "\n```text\nout\n```\n", "--list")
    assert code == 0
    assert out.splitlines() == [f"{tmp_path / 'doc.md'}:1 bash run", f"{tmp_path / 'doc.md'}:6 bash static: needs a GPU",
                                f"{tmp_path / 'doc.md'}:10 text skip"]
