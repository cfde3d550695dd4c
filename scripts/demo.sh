#!/usr/bin/env bash
# README command one: set up, then run ingest, a rules worker, the webhook dispatcher and the
# alerts API with a simulated fleet; the reference receiver (examples/webhook_receiver.py) takes
# the teams' webhooks. Prints what was stored, the alerts raised and the webhooks received.
# Uses PLACEWATCH_* settings from the environment or .env; defaults are the local PostgreSQL
# (127.0.0.1:5432, database "placewatch", created if missing) and Mosquitto (127.0.0.1:1883).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DEMO_DURATION:-30}"

source scripts/setup-venv.sh

# Demo-only secrets, made up for this run unless given: link signing and the teams' webhooks.
export PLACEWATCH_LINK_SECRET="${PLACEWATCH_LINK_SECRET:-$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(32))')}"
export PLACEWATCH_DEMO_WEBHOOK_SECRET="${PLACEWATCH_DEMO_WEBHOOK_SECRET:-$(.venv/bin/python -c 'from notify.signing import new_secret; print(new_secret())')}"
# The demo receiver listens on http://127.0.0.1:8900 (examples/teams.yaml): plain http to
# loopback is refused by default, so the demo opts in, for `teams apply` and notify alike.
export PLACEWATCH_NOTIFY_ALLOW_HTTP="${PLACEWATCH_NOTIFY_ALLOW_HTTP:-true}"
export PLACEWATCH_NOTIFY_ALLOWED_NETWORKS="${PLACEWATCH_NOTIFY_ALLOWED_NETWORKS:-127.0.0.0/8}"
RECEIVED="$(mktemp -d)/received.jsonl"

.venv/bin/placewatch migrate
.venv/bin/placewatch simulate --council demo --council-name "Demo Borough" --per-kind 5 --count 0
.venv/bin/placewatch teams apply examples/teams.yaml
WEBHOOK_SECRET="$PLACEWATCH_DEMO_WEBHOOK_SECRET" .venv/bin/python examples/webhook_receiver.py \
  --port 8900 --log "$RECEIVED" > "${RECEIVED%.jsonl}.out" 2>&1 &
RECEIVER=$!
.venv/bin/placewatch ingest &
INGEST=$!
.venv/bin/placewatch rules run &
RULES=$!
.venv/bin/placewatch notify &
NOTIFY=$!
.venv/bin/placewatch api > "${RECEIVED%.jsonl}-api.log" 2>&1 &
API=$!
stop() { kill -TERM "$@" 2>/dev/null || true; wait "$@" 2>/dev/null || true; }
trap 'stop $INGEST $RULES $NOTIFY $API $RECEIVER' EXIT
sleep 3
echo "== simulating 5 devices per kind at 50 messages/s for ${DURATION} s, 1 in 200 malformed"
.venv/bin/placewatch simulate --council demo --council-name "Demo Borough" --per-kind 5 \
  --rate 50 --duration "$DURATION" --bad-every 200
sleep 3
stop $INGEST $RULES $NOTIFY $API $RECEIVER
trap - EXIT
echo "== stored"
.venv/bin/placewatch status
echo "== latest alerts (placewatch alerts list --all)"
.venv/bin/placewatch alerts list --all --limit 10
echo "== webhooks received by the reference receiver (signatures verified)"
.venv/bin/python - "$RECEIVED" <<'PY'
import json, sys
from collections import Counter
from pathlib import Path
path = Path(sys.argv[1])
events = [json.loads(l) for l in path.read_text().splitlines()] if path.exists() else []
print(f"{len(events)} events: " + ", ".join(f"{t} {n}" for t, n in Counter(e["event"]["type"] for e in events).items()))
for e in events[-3:]:
    a = e["event"]["alert"]
    print(f"  {e['event']['type']} #{a['id']} [{a['severity']}] {a['summary']}")
PY
