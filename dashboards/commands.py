"""``placewatch dashboards``: generate the dashboards' JSON, check it is current, push it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from dashboards.push_command import add_push_arguments, run_push


def add_dashboards_parser(sub: Any) -> None:
    dash = sub.add_parser("dashboards", help="Grafana dashboards: generate, check, push")
    dsub = dash.add_subparsers(dest="dashboards_command", required=True)
    gen = dsub.add_parser(
        "generate",
        help="write dashboards/json from the dashboards' code",
        description="Render every dashboard (dashboards/boards/) to dashboards/json/<Folder>/, "
        "the files Grafana provisions. --check only says whether the files are current.",
    )
    gen.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    push = dsub.add_parser(
        "push",
        help="upload data sources, folders and dashboards to a running Grafana (idempotent)",
        description="Create or update the data sources (dashboards/provisioning/datasources), "
        "folders and dashboards (dashboards/json) in a Grafana through its HTTP API. What is "
        "already as the files say is left alone.",
    )
    add_push_arguments(push)


def run_dashboards_command(args: argparse.Namespace) -> int:
    if args.dashboards_command == "push":
        return run_push(args)
    from dashboards.generate import JSON_DIR, stale, write

    if args.check:
        problems = stale()
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run: placewatch dashboards generate", file=sys.stderr)
            return 1
        print(f"dashboards in {JSON_DIR} are current")
        return 0
    for path in write():
        print(f"wrote {path}")
    return 0
