#!/bin/sh
# The mosquitto-passwd service (docker compose): writes the broker's auth files into the
# mosquitto-auth volume before the broker starts, on every `docker compose up`.
#   passwd  the service accounts, hashed by mosquitto_passwd, from the .env secrets
#           MQTT_INGEST_PASSWORD and MQTT_SIMULATOR_PASSWORD
#   acl     a copy of broker/compose/acl
#   health  the password of placewatch-health, used only by the broker's healthcheck: random,
#           made once and kept, so a broker that is still running keeps accepting it
# Mosquitto 2.0.x warns about (and later versions refuse) password and ACL files that are world
# readable or not owned by mosquitto, so each is mode 0700 (as the 2.0 docs use), owner mosquitto.
# The broker reads them only when it starts or gets SIGHUP: after changing a password in .env,
# run `docker compose up -d` and then `docker compose kill -s HUP mosquitto`.
# Runs in the eclipse-mosquitto image (busybox sh, mosquitto_passwd).
set -eu

: "${MQTT_INGEST_PASSWORD:?set MQTT_INGEST_PASSWORD in .env}"
: "${MQTT_SIMULATOR_PASSWORD:?set MQTT_SIMULATOR_PASSWORD in .env}"

src="$(dirname "$0")"
auth="${MOSQUITTO_AUTH_DIR:-/mosquitto/auth}"
umask 077
mkdir -p "$auth"
# As root (always, in the container) hand the files to the broker's user, which it drops to.
if [ "$(id -u)" = 0 ]; then
  chown mosquitto:mosquitto "$auth"
fi

if [ ! -s "$auth/health" ]; then
  od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$auth/health.new"
  mv -f "$auth/health.new" "$auth/health"
fi

# Build the new files beside the old ones and rename them into place: the broker never reads a
# half-written file. (mosquitto_passwd -b puts the password on its own command line, visible
# only inside this short-lived container.)
rm -f "$auth/passwd.new"
: >"$auth/passwd.new"
mosquitto_passwd -b "$auth/passwd.new" placewatch-ingest "$MQTT_INGEST_PASSWORD"
mosquitto_passwd -b "$auth/passwd.new" placewatch-simulator "$MQTT_SIMULATOR_PASSWORD"
mosquitto_passwd -b "$auth/passwd.new" placewatch-health "$(cat "$auth/health")"
cp "$src/acl" "$auth/acl.new"

for f in passwd acl; do
  if [ "$(id -u)" = 0 ]; then
    chown mosquitto:mosquitto "$auth/$f.new"
  fi
  chmod 0700 "$auth/$f.new"
  mv -f "$auth/$f.new" "$auth/$f"
done
echo "mosquitto-passwd: wrote $auth/passwd (placewatch-ingest, placewatch-simulator, placewatch-health) and $auth/acl"
