"""The lane-seg command line: --version, and help that shows each option's default."""

import argparse
import re
import sys
from pathlib import Path

import processes
from lane_seg_core import __version__
from lane_seg_core.cli import build_parser
from lane_seg_core.train_config import TrainConfig

REPO = Path(__file__).resolve().parent.parent


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_version_names_the_package_version():
    result = processes.run([sys.executable, "-m", "lane_seg_core.cli", "--version"], timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(rf"lane-seg {re.escape(__version__)}(\+g[0-9a-f]+)?\n", result.stdout), result.stdout


def test_train_help_shows_the_defaults_of_the_config():
    text = " ".join(subcommands(build_parser())["train"].format_help().split())  # unwrapped
    defaults = TrainConfig(data="", out="")
    for option, value in (("--epochs", defaults.epochs), ("--lr", defaults.lr), ("--batch-size", defaults.batch_size),
                          ("--delta-var", defaults.delta_var), ("--val-every", defaults.val_every)):
        assert re.search(rf"{option} \S+ (?:(?! --[a-z]).)*\(default: {re.escape(str(value))}\)", text), (option, value)


def test_every_option_that_takes_a_value_says_its_default():
    for name, command in subcommands(build_parser()).items():
        formatter = command._get_formatter()
        for action in command._actions:
            if not action.option_strings or action.nargs == 0 or action.default in (None, argparse.SUPPRESS):
                continue
            assert action.help, f"{name} {action.option_strings[0]} has no help"
            shown = formatter._expand_help(action)  # the help line as --help prints it
            assert "default" in shown, f"{name} {action.option_strings[0]}: {shown}"
