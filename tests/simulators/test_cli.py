"""``placewatch simulate``: every option explains itself, the demo's flags still work, and
options that cannot go together are refused with a reason (exit 2), not ignored."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from placewatch.cli import build_parser
from placewatch.settings import Settings
from simulators.commands import run_simulate_command


def _simulate_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser: argparse.ArgumentParser = sub.choices["simulate"]
    return parser


def test_every_option_has_help() -> None:
    parser = _simulate_parser()
    options = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    assert len(options) >= 20
    for action in options:
        assert action.help and len(action.help) > 15, action.option_strings


def test_help_runs_and_shows_the_modes() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "placewatch", "simulate", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for words in ("--scenario borough --backfill 7d", "--speed 1440", "--load", "time modes"):
        assert words in out


def test_the_demo_flags_still_parse() -> None:
    args = build_parser().parse_args(
        [
            "simulate",
            "--council",
            "demo",
            "--council-name",
            "Demo",
            "--per-kind",
            "5",
            "--kinds",
            "bin_fill",
            "--rate",
            "50",
            "--count",
            "10",
            "--duration",
            "30",
            "--qos",
            "1",
            "--seed",
            "3",
            "--bad-every",
            "200",
            "--no-register",
        ]
    )
    assert (args.council, args.per_kind, args.kinds, args.rate) == ("demo", 5, ["bin_fill"], 50)
    assert (args.bad_every, args.no_register, args.scenario) == (200, True, None)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ("--backfill 7d", "--backfill needs --scenario"),
        ("--format ttn --per-kind 2", "--format needs --scenario"),
        ("--scenario borough --load", "exclude each other"),
        ("--scenario borough --council x", "names its own council"),
        ("--scenario borough --per-kind 9", "for the basic fleet"),
        ("--scenario borough --backfill 7d --start 2d", "--backfill sets the start"),
        ("--scenario borough --speed 0", "--speed must be positive"),
        ("--scenario borough --faults sometimes", "unknown fault"),
        ("--scenario atlantis", "no built-in scenario"),
    ],
)
def test_refused_combinations(argv: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["simulate", *argv.split(), "--no-register"])
    assert run_simulate_command(args, Settings(mqtt_port=1)) == 2
    assert message in capsys.readouterr().err
