"""The command line of ``placewatch dashboards push``. Kept apart from :mod:`dashboards.push`
so that building the ``placewatch`` parser does not import the HTTP client (a third of a
second at every start of every command)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

DEFAULT_ROOT = Path(__file__).resolve().parent
DEFAULT_URL = "http://127.0.0.1:3000"
ENV_URL = "PLACEWATCH_GRAFANA_URL"
ENV_TOKEN = "PLACEWATCH_GRAFANA_TOKEN"
ENV_USER = "PLACEWATCH_GRAFANA_USER"
ENV_PASSWORD = "PLACEWATCH_GRAFANA_PASSWORD"


class CredentialsError(ValueError):
    pass


def add_push_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``placewatch dashboards push``."""
    parser.add_argument(
        "--url",
        help=f"Grafana's address (default: ${ENV_URL}, else {DEFAULT_URL})",
    )
    parser.add_argument(
        "--token",
        help=f"a service account or API token (default: ${ENV_TOKEN})",
    )
    parser.add_argument(
        "--user",
        help=f"user for basic auth (default: ${ENV_USER}; 'admin' if a password is given alone)",
    )
    parser.add_argument(
        "--password",
        help=(
            f"password for basic auth (default: ${ENV_PASSWORD}; prefer the variable, a password "
            "on the command line is visible to other users). With no token, user or password "
            "at all, Grafana's initial admin/admin login is used"
        ),
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=DEFAULT_ROOT,
        help="the directory with provisioning/ and json/ (default: the dashboards package)",
    )
    parser.add_argument(
        "--update-secrets",
        action="store_true",
        help=(
            "also send the data sources' secrets (secureJsonData) to data sources that have them; "
            "without it they are sent only on creation or when a secret key is not set yet"
        ),
    )
    parser.add_argument(
        "--timeout", type=float, default=10, help="seconds to wait for each answer (default: 10)"
    )


def _resolve_auth(
    args: argparse.Namespace, environ: Mapping[str, str]
) -> tuple[str | tuple[str, str], bool]:
    """The credential, and whether it is Grafana's initial admin/admin for lack of any other."""
    token = getattr(args, "token", None) or environ.get(ENV_TOKEN) or None
    user = getattr(args, "user", None) or environ.get(ENV_USER) or None
    password = getattr(args, "password", None) or environ.get(ENV_PASSWORD) or None
    if token and (user or password):
        raise CredentialsError(
            f"give a token or a user and password, not both "
            f"(--token/{ENV_TOKEN} and --user/--password/{ENV_USER}/{ENV_PASSWORD})"
        )
    if token:
        return token, False
    if user is None and password is None:
        return ("admin", "admin"), True
    if password is None:
        raise CredentialsError(f"--user needs --password (or {ENV_PASSWORD})")
    return (user or "admin", password), False


def run_push(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    """Run ``placewatch dashboards push``: one line per item, then a summary; 0, or 1 with the
    error on stderr."""
    env = os.environ if environ is None else environ
    url = getattr(args, "url", None) or env.get(ENV_URL) or DEFAULT_URL
    from dashboards.push import PushError, display_url, push

    default_login = False
    try:
        auth, default_login = _resolve_auth(args, env)
        report = push(
            url,
            auth=auth,
            root=getattr(args, "root", None) or DEFAULT_ROOT,
            environ=env,
            timeout=getattr(args, "timeout", None) or 10,
            update_secrets=bool(getattr(args, "update_secrets", False)),
        )
    except (PushError, CredentialsError) as e:
        hint = ""
        if default_login and "(401)" in str(e):
            hint = (
                f" (no credentials were given, so Grafana's initial admin/admin was tried; "
                f"set {ENV_TOKEN}, or {ENV_USER} and {ENV_PASSWORD})"
            )
        print(f"dashboards push: {e}{hint}", file=sys.stderr)
        return 1
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for verb, items in (
        ("created", report.created),
        ("updated", report.updated),
        ("unchanged", report.unchanged),
    ):
        for item in items:
            print(f"{verb} {item}")
    print(
        f"pushed to {display_url(url)}: {len(report.created)} created, "
        f"{len(report.updated)} updated, {len(report.unchanged)} unchanged"
    )
    return 0
