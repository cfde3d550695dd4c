#!/usr/bin/env bash
# README command two: set up, lint, type-check and run the whole test suite against the real
# PostgreSQL (PLACEWATCH_TEST_DATABASE_URL, default the local server) and a private Mosquitto
# started from broker/mosquitto.conf.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/setup-venv.sh
# `docker compose` for tests/deploy (installs the compose plugin if only the client is here).
bash scripts/setup-compose.sh

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest "$@"
