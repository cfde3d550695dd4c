#!/usr/bin/env bash
# README command one: set up, then run ingest and a rules worker with a simulated fleet, and
# print what was stored and which alerts were raised.
# Uses PLACEWATCH_* settings from the environment or .env; defaults are the local PostgreSQL
# (127.0.0.1:5432, database "placewatch", created if missing) and Mosquitto (127.0.0.1:1883).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DEMO_DURATION:-30}"

source scripts/setup-venv.sh

.venv/bin/placewatch migrate
.venv/bin/placewatch ingest &
INGEST=$!
.venv/bin/placewatch rules run &
RULES=$!
stop() { kill -TERM "$@" 2>/dev/null || true; wait "$@" 2>/dev/null || true; }
trap 'stop $INGEST $RULES' EXIT
sleep 2
echo "== simulating 5 devices per kind at 50 messages/s for ${DURATION} s, 1 in 200 malformed"
.venv/bin/placewatch simulate --council demo --council-name "Demo Borough" --per-kind 5 \
  --rate 50 --duration "$DURATION" --bad-every 200
sleep 2
stop $INGEST $RULES
trap - EXIT
echo "== stored"
.venv/bin/placewatch status
echo "== latest alerts (placewatch alerts list --all)"
.venv/bin/placewatch alerts list --all --limit 10
