"""Shared by the deploy tests: the repository's deploy files, .env.example, and ``docker compose``
run the same way every time (fake secrets from .env.example only, never the caller's)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
BROKER_DIR = ROOT / "broker" / "compose"
BASE_MOSQUITTO_CONF = ROOT / "broker" / "mosquitto.conf"
COMPOSE_MOSQUITTO_CONF = BROKER_DIR / "mosquitto.conf"
ACL_FILE = BROKER_DIR / "acl"
MAKE_PASSWD = BROKER_DIR / "make-passwd.sh"
TEAMS_FILE = ROOT / "deploy" / "teams.yaml"
GRAFANA_ROLE_SCRIPT = ROOT / "deploy" / "postgres" / "10-grafana-role.sh"
PROVISIONING = ROOT / "dashboards" / "provisioning"

# Optional, non-secret variables the compose file reads with a default (host ports).
OPTIONAL_VARS = ("MQTT_HOST_PORT", "POSTGRES_HOST_PORT")


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def env_example() -> dict[str, str]:
    """KEY=value lines of .env.example, in order (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line)
        assert match, f".env.example: not a KEY=value line: {line!r}"
        values[match.group(1)] = match.group(2)
    return values


def mosquitto_settings(path: Path) -> list[tuple[str, str]]:
    """(option, value) of each setting line of a Mosquitto config, in order."""
    out: list[tuple[str, str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, _, value = line.strip().partition(" ")
        out.append((key, value.strip()))
    return out


def docker_client() -> str | None:
    return shutil.which("docker")


def compose(*args: str, env_file: Path = ENV_EXAMPLE) -> subprocess.CompletedProcess[str]:
    """``docker compose --env-file <env_file> <args>`` in the repository root.

    The variables .env.example names are removed from the environment, so that only the env file
    decides (compose lets the shell environment override it), and the repository's own .env, if
    any, is not read (an explicit --env-file replaces it)."""
    docker = docker_client()
    assert docker is not None
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in env_example() and k not in OPTIONAL_VARS and not k.startswith("COMPOSE_")
    }
    command = [docker, "compose", "--project-directory", str(ROOT), "--file", str(COMPOSE_FILE)]
    return subprocess.run(
        [*command, "--env-file", str(env_file), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
