"""``placewatch care evaluate``: measure the care rules on a real home's recorded data."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from care.evaluate import evaluate, factor_sweep
from care.formats import FORMATS, load_home
from care.report import plot, render, to_json
from placewatch.settings import Settings
from placewatch.yamlconfig import ConfigLoadError
from rules.kinds.care import CareRule, InactivityRule

SWEEP_FACTORS = (1.0, 1.1, 1.2, 1.3, 1.5, 1.75, 2.0)


def add_care_parser(sub: Any) -> None:
    care = sub.add_parser("care", help="care alerts: evaluate the detectors on recorded homes")
    csub = care.add_subparsers(dest="care_command", required=True)
    ev = csub.add_parser(
        "evaluate",
        help="replay a recorded home through the care rules and measure their quality",
        description="Replay a recorded home through the configured care rules (the live "
        "detector code): false alert episodes per resident-month on the unmodified data, "
        "detection delay for injected acute incidents, days to detect injected declines. "
        "See docs/care.md.",
    )
    ev.add_argument("--format", required=True, choices=sorted(FORMATS), help="the data set")
    ev.add_argument("path", help="the data file (or, for ordonez, its folder)")
    ev.add_argument("--seed", type=int, default=1, help="seed of the injected incidents")
    ev.add_argument("--plot", type=Path, default=None, help="write the plot (PNG) here")
    ev.add_argument(
        "--sweep", action="store_true", help="also sweep the inactivity factor (trade-off curve)"
    )
    ev.add_argument("--json", action="store_true", help="print the full report as JSON")
    ev.add_argument("--no-progress", action="store_true", help="no progress bars")


@contextmanager
def _bars(enabled: bool) -> Iterator[Callable[[str, int], Callable[[], None]]]:
    progress = Progress(
        TextColumn("[bold]{task.description:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )

    def stage(title: str, total: int) -> Callable[[], None]:
        task = progress.add_task(title, total=total)
        return lambda: progress.advance(task)

    with progress:
        yield stage


def _care_rules(settings: Settings) -> list[CareRule]:
    from rules.worker import load_configured_rules

    return [
        r for r in load_configured_rules(settings).rules if isinstance(r, CareRule) and r.enabled
    ]


def run_care_command(args: argparse.Namespace, settings: Settings) -> int:
    try:
        rules = _care_rules(settings)
    except ConfigLoadError as e:
        print(e, file=sys.stderr)
        return 1
    if not rules:
        print("no care rules are enabled (see docs/care.md)", file=sys.stderr)
        return 1
    try:
        log = load_home(args.format, args.path)
    except (OSError, ValueError) as e:
        print(f"cannot load {args.path}: {e}", file=sys.stderr)
        return 1
    with _bars(not args.no_progress and sys.stderr.isatty()) as stage:
        report = evaluate(log, rules, seed=args.seed, progress=stage)
        inactivity = next((r for r in rules if isinstance(r, InactivityRule)), None)
        if args.sweep and inactivity is not None:
            step = stage("factor sweep", len(SWEEP_FACTORS))
            report.sweep = factor_sweep(log, inactivity, SWEEP_FACTORS, args.seed, step)
    print(to_json(report) if args.json else render(report))
    if args.plot is not None:
        plot(report, args.plot)
        print(f"\nplot written to {args.plot}", file=sys.stderr)
    return 0
