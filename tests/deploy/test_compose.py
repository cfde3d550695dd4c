"""The docker compose stack, checked without a Docker engine: ``docker compose config`` renders
and validates docker-compose.yml with the fake secrets of .env.example, and the rendered services
are checked against the files they mount and the settings they rely on (Prometheus targets,
Grafana provisioning, the broker's auth, the Dockerfile's packages).

Needs the docker client with the compose plugin (scripts/setup-compose.sh installs the plugin);
skipped only when there is no docker client at all.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from placewatch.settings import Settings
from tests.deploy.support import (
    ACL_FILE,
    BASE_MOSQUITTO_CONF,
    BROKER_DIR,
    COMPOSE_FILE,
    COMPOSE_MOSQUITTO_CONF,
    ENV_EXAMPLE,
    PROMETHEUS_CONFIG,
    PROVISIONING,
    ROOT,
    TEAMS_FILE,
    compose,
    docker_client,
    env_example,
    load_yaml,
    mosquitto_settings,
)

pytestmark = pytest.mark.skipif(
    docker_client() is None,
    reason="no docker client on PATH: the compose file cannot be rendered"
    " (install the docker CLI; scripts/setup-compose.sh then adds the compose plugin)",
)

# The long-running placewatch services and the settings field of the port each serves
# /metrics, /healthz and /readyz on.
PORT_FIELDS = {
    "ingest": "ingest_http_port",
    "rules": "rules_http_port",
    "notify": "notify_http_port",
    "api": "api_port",
}
HOST_VARS = {
    "ingest": "PLACEWATCH_INGEST_HTTP_HOST",
    "rules": "PLACEWATCH_RULES_HTTP_HOST",
    "notify": "PLACEWATCH_NOTIFY_HTTP_HOST",
    "api": "PLACEWATCH_API_HOST",
}


def _default_port(service: str) -> int:
    port = Settings.model_fields[PORT_FIELDS[service]].default
    assert isinstance(port, int)
    return port


def _run_ok(*args: str) -> subprocess.CompletedProcess[str]:
    result = compose(*args)
    if result.returncode != 0:
        pytest.fail(
            f"docker compose {' '.join(args)} failed ({result.returncode}):\n{result.stderr}\n"
            "(no compose plugin? bash scripts/setup-compose.sh installs it)"
        )
    return result


@pytest.fixture(scope="module")
def rendered() -> Iterator[dict[str, Any]]:
    """The compose model as `docker compose config` renders it, every profile enabled."""
    result = _run_ok("--profile", "*", "config", "--format", "json")
    model = json.loads(result.stdout)
    assert isinstance(model, dict)
    yield model


@pytest.fixture(scope="module")
def services(rendered: dict[str, Any]) -> dict[str, dict[str, Any]]:
    svc = rendered["services"]
    assert isinstance(svc, dict)
    return svc


def test_compose_config_is_valid() -> None:
    _run_ok("config", "-q")
    _run_ok("--profile", "*", "config", "-q")


def test_the_stack_has_its_services(services: dict[str, dict[str, Any]]) -> None:
    expected = {
        "mosquitto-passwd",
        "mosquitto",
        "timescaledb",
        "migrate",
        "setup",
        "ingest",
        "rules",
        "notify",
        "api",
        "receiver",
        "simulator",
        "prometheus",
        "grafana",
    }
    assert expected <= set(services), f"missing: {sorted(expected - set(services))}"
    assert "simulator" in services["simulator"].get("profiles", [])


def test_every_image_is_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        image = svc.get("image")
        assert image, f"{name}: no image (a built service needs a tagged image name too)"
        if "@sha256:" in image:
            continue
        last = image.rsplit("/", 1)[-1]
        assert ":" in last, f"{name}: image {image!r} has no tag"
        tag = last.split(":", 1)[1]
        assert tag and tag != "latest", f"{name}: image {image!r} is not pinned"
        if "build" not in svc:
            # Third-party images: a version, not a moving name like "stable" or "main".
            assert re.search(r"\d", tag), f"{name}: tag {tag!r} of {image!r} is not a version"


def _readyz_port(svc: dict[str, Any]) -> int:
    test = " ".join(svc["healthcheck"]["test"])
    match = re.search(r"http://127\.0\.0\.1:(\d+)/readyz", test)
    assert match, f"healthcheck does not probe /readyz: {test}"
    return int(match.group(1))


@pytest.mark.parametrize("service", sorted(PORT_FIELDS))
def test_long_running_services_are_probed_and_reachable(
    services: dict[str, dict[str, Any]], service: str
) -> None:
    svc = services[service]
    port = _default_port(service)
    health = svc.get("healthcheck")
    assert health and not health.get("disable"), f"{service}: no healthcheck"
    assert _readyz_port(svc) == port
    env = svc["environment"]
    # Listening on loopback only, Prometheus (another container) could not scrape it.
    assert env.get(HOST_VARS[service]) == "0.0.0.0"
    assert svc.get("restart") in ("unless-stopped", "always", "on-failure")
    migrate = svc["depends_on"]["migrate"]["condition"]
    assert migrate == "service_completed_successfully"


def _scrape_targets() -> dict[str, tuple[str, set[str]]]:
    """job_name -> (metrics path, {host:port targets})."""
    config = load_yaml(PROMETHEUS_CONFIG)
    assert config["global"]["scrape_interval"] == "15s"
    jobs: dict[str, tuple[str, set[str]]] = {}
    for job in config["scrape_configs"]:
        targets = {t for sc in job.get("static_configs", []) for t in sc["targets"]}
        jobs[job["job_name"]] = (job.get("metrics_path", "/metrics"), targets)
    return jobs


@pytest.mark.parametrize("service", sorted(PORT_FIELDS))
def test_prometheus_scrapes_each_service_at_its_port(service: str) -> None:
    jobs = _scrape_targets()
    job = f"placewatch-{service}"
    assert job in jobs, f"no scrape job {job} in {PROMETHEUS_CONFIG.name}: {sorted(jobs)}"
    path, targets = jobs[job]
    assert path == "/metrics"
    assert f"{service}:{_default_port(service)}" in targets


def test_prometheus_and_grafana_mount_what_they_read(services: dict[str, dict[str, Any]]) -> None:
    prometheus = services["prometheus"]
    assert any(
        v["type"] == "bind"
        and Path(v["source"]) == PROMETHEUS_CONFIG
        and v["target"] == "/etc/prometheus/prometheus.yml"
        for v in prometheus["volumes"]
    )
    assert "127.0.0.1:9090" in _published(prometheus)

    grafana = services["grafana"]
    binds = {
        v["target"]: (Path(v["source"]), v.get("read_only", False))
        for v in grafana["volumes"]
        if v["type"] == "bind"
    }
    assert binds["/etc/grafana/provisioning"] == (PROVISIONING, True)
    assert binds["/var/lib/grafana/dashboards"] == (ROOT / "dashboards" / "json", True)
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == env_example()["GRAFANA_ADMIN_PASSWORD"]
    assert env["GRAFANA_DB_PASSWORD"] == env_example()["GRAFANA_DB_PASSWORD"]
    assert "/api/health" in " ".join(grafana["healthcheck"]["test"])
    assert "127.0.0.1:3000" in _published(grafana)


def _published(svc: dict[str, Any]) -> set[str]:
    return {f"{p.get('host_ip', '0.0.0.0')}:{p['published']}" for p in svc.get("ports", [])}


def test_host_ports_are_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port} beyond loopback"


def test_grafana_provisioning_points_at_the_stack(services: dict[str, dict[str, Any]]) -> None:
    sources = {
        ds["uid"]: ds
        for ds in load_yaml(PROVISIONING / "datasources" / "placewatch.yaml")["datasources"]
    }
    pg = sources["placewatch-postgres"]
    assert pg["type"] == "grafana-postgresql-datasource"
    assert pg["name"] == "placewatch PostgreSQL"
    host, port = pg["url"].split(":")
    assert host in services and port == "5432"
    assert pg["jsonData"]["database"] == services["timescaledb"]["environment"]["POSTGRES_DB"]
    assert pg["user"] == "grafana"
    # Expanded by Grafana from its environment, which compose fills from .env.
    assert pg["secureJsonData"]["password"] == "$GRAFANA_DB_PASSWORD"
    assert pg["isDefault"] is True and pg["editable"] is False
    assert pg["jsonData"]["timescaledb"] is True

    prom = sources["placewatch-prometheus"]
    assert prom["type"] == "prometheus"
    url = urlsplit(prom["url"])
    assert url.hostname in services and url.port == 9090
    assert (
        prom["jsonData"]["timeInterval"]
        == load_yaml(PROMETHEUS_CONFIG)["global"]["scrape_interval"]
    )

    (provider,) = load_yaml(PROVISIONING / "dashboards" / "placewatch.yaml")["providers"]
    assert provider["type"] == "file"
    assert provider["disableDeletion"] is True and provider["allowUiUpdates"] is False
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert provider["options"]["foldersFromFilesStructure"] is True
    # With foldersFromFilesStructure Grafana refuses a fixed folder.
    assert "folder" not in provider and "folderUid" not in provider


def test_start_order(services: dict[str, dict[str, Any]]) -> None:
    def conditions(name: str) -> dict[str, str]:
        return {k: v["condition"] for k, v in services[name].get("depends_on", {}).items()}

    assert conditions("mosquitto") == {"mosquitto-passwd": "service_completed_successfully"}
    assert conditions("migrate") == {"timescaledb": "service_healthy"}
    assert conditions("setup") == {"migrate": "service_completed_successfully"}
    assert conditions("ingest")["mosquitto"] == "service_healthy"
    assert conditions("ingest")["timescaledb"] == "service_healthy"
    assert conditions("simulator")["ingest"] == "service_healthy"
    for one_shot in ("mosquitto-passwd", "migrate", "setup"):
        assert services[one_shot].get("restart", "no") == "no", one_shot
    grace = services["ingest"]["stop_grace_period"]
    assert int(grace.rstrip("s")) > Settings.model_fields["ingest_stop_timeout_s"].default


def test_broker_config_has_authentication_on(services: dict[str, dict[str, Any]]) -> None:
    broker = services["mosquitto"]
    conf_path = broker["command"][broker["command"].index("-c") + 1]
    mounts = {v["target"]: v for v in broker["volumes"] if conf_path.startswith(v["target"] + "/")}
    (mount,) = mounts.values()
    assert mount["type"] == "bind" and Path(mount["source"]) == BROKER_DIR
    assert mount.get("read_only") is True
    assert Path(mount["source"]) / Path(conf_path).relative_to(mount["target"]) == (
        COMPOSE_MOSQUITTO_CONF
    )

    settings = dict(mosquitto_settings(COMPOSE_MOSQUITTO_CONF))
    assert settings["allow_anonymous"] == "false"
    assert settings["per_listener_settings"] == "false"  # so the auth applies to every listener
    volumes = {v["target"] for v in broker["volumes"] if v["type"] == "volume"}
    for option in ("password_file", "acl_file"):
        path = settings[option]
        assert any(path.startswith(t + "/") for t in volumes), f"{option} {path} not on a volume"
    assert settings["persistence_location"].rstrip("/") in volumes

    # The one-shot that writes them mounts the same volume and runs the script beside the ACL.
    writer = services["mosquitto-passwd"]
    assert volumes & {v["target"] for v in writer["volumes"] if v["type"] == "volume"}
    assert writer["image"] == broker["image"]
    assert "make-passwd.sh" in " ".join(writer["command"])

    health = " ".join(broker["healthcheck"]["test"])
    assert "mosquitto_sub" in health and "SYS/broker/uptime" in health
    assert "-C 1" in health and "-W 3" in health


def test_broker_config_keeps_the_tuned_settings() -> None:
    """broker/compose/mosquitto.conf = broker/mosquitto.conf's settings, in the same order,
    with anonymous access off and the password and ACL files added."""
    auth = {"allow_anonymous", "password_file", "acl_file"}
    base = [s for s in mosquitto_settings(BASE_MOSQUITTO_CONF) if s[0] not in auth]
    compose_conf = [s for s in mosquitto_settings(COMPOSE_MOSQUITTO_CONF) if s[0] not in auth]
    assert compose_conf == base


def test_acl_file_grants_only_what_each_user_needs() -> None:
    grants: dict[str, set[tuple[str, str]]] = {}
    user = None
    for line in ACL_FILE.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        words = line.split()
        if words[0] == "user":
            user = words[1]
            grants[user] = set()
        else:
            assert words[0] == "topic" and user, f"unexpected ACL line {line!r}"
            assert len(words) == 3, f"say read or write explicitly: {line!r}"
            grants[user].add((words[1], words[2]))
    ingest_topics = (
        f"{Settings.model_fields['topic_prefix'].default}/#",
        *Settings().ingest_network_topics,
    )
    assert grants["placewatch-ingest"] == {("read", t) for t in ingest_topics}
    assert grants["placewatch-simulator"] == {("write", t) for t in ingest_topics}
    assert grants["placewatch-health"] == {("read", "$SYS/broker/uptime")}


def test_services_log_in_as_their_mqtt_users(services: dict[str, dict[str, Any]]) -> None:
    secrets = env_example()
    for service, user, var in (
        ("ingest", "placewatch-ingest", "MQTT_INGEST_PASSWORD"),
        ("simulator", "placewatch-simulator", "MQTT_SIMULATOR_PASSWORD"),
    ):
        env = services[service]["environment"]
        assert env["PLACEWATCH_MQTT_USERNAME"] == user
        assert env["PLACEWATCH_MQTT_PASSWORD"] == secrets[var]
        assert services["mosquitto-passwd"]["environment"][var] == secrets[var]


def test_shared_secrets_match(services: dict[str, dict[str, Any]]) -> None:
    secrets = env_example()
    for name in ("notify", "api"):
        link = services[name]["environment"]["PLACEWATCH_LINK_SECRET"]
        assert link == secrets["PLACEWATCH_LINK_SECRET"]
    # The teams' endpoints sign with the secret the receiver verifies with.
    teams = load_yaml(TEAMS_FILE)
    setup_env = services["setup"]["environment"]
    receiver = services["receiver"]
    command = receiver["command"]
    receiver_port = command[command.index("--port") + 1]
    for team in teams["teams"]:
        for hook in team["webhooks"]:
            assert setup_env[hook["secret_env"]] == secrets["WEBHOOK_SECRET"]
            url = urlsplit(hook["url"])
            assert (url.hostname, str(url.port)) == ("receiver", receiver_port)
    assert receiver["environment"]["WEBHOOK_SECRET"] == secrets["WEBHOOK_SECRET"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    # The owner's commands log in with the password the server was given; each service as its
    # own login role (deploy/postgres/20-service-roles.sh) with a password of its own.
    db = services["timescaledb"]["environment"]
    for name in ("migrate", "setup", "simulator"):
        env = services[name]["environment"]
        assert env["PGPASSWORD"] == db["POSTGRES_PASSWORD"], name
        assert urlsplit(env["PLACEWATCH_DATABASE_URL"]).username == db["POSTGRES_USER"], name
    passwords = {db["POSTGRES_PASSWORD"]}
    for name in ("ingest", "rules", "notify", "api"):
        env = services[name]["environment"]
        var = f"{name.upper()}_DB_PASSWORD"
        assert urlsplit(env["PLACEWATCH_DATABASE_URL"]).username == name
        assert env["PGPASSWORD"] == db[var] == secrets[var], name
        passwords.add(env["PGPASSWORD"])
    assert len(passwords) == 5, "every login has a password of its own"


def test_setup_registers_the_council_before_applying_teams(
    services: dict[str, dict[str, Any]],
) -> None:
    setup = services["setup"]
    script = " ".join(setup["command"])
    imported = script.index("placewatch devices import borough")
    applied = script.index("placewatch teams apply deploy/teams.yaml")
    assert imported < applied and "&&" in script[imported:applied]
    assert load_yaml(TEAMS_FILE)["council"] == "borough"


def test_env_example_names_every_variable_the_compose_file_needs() -> None:
    lines = COMPOSE_FILE.read_text(encoding="utf-8").splitlines()
    # Interpolated text: not comments, and "$$" is a literal "$".
    text = "\n".join(ln for ln in lines if not ln.lstrip().startswith("#")).replace("$$", "")
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    optional = set(re.findall(r"\$\{([A-Z0-9_]+):-", text))
    assert required, "no required variables: secrets must come from .env"
    assert required == set(env_example()), "required ${VAR:?} and .env.example differ"
    # Anything else is optional with a default; nothing is read without one.
    bare = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)\}?(?![:A-Z0-9_])", text))
    assert bare <= required | optional, f"read without a default or check: {bare}"


def test_no_secret_value_is_written_into_the_repository() -> None:
    files = [
        COMPOSE_FILE,
        PROMETHEUS_CONFIG,
        TEAMS_FILE,
        COMPOSE_MOSQUITTO_CONF,
        ACL_FILE,
        *sorted(PROVISIONING.rglob("*.yaml")),
        *sorted((ROOT / "deploy").rglob("*.sh")),
        *sorted(BROKER_DIR.glob("*.sh")),
    ]
    for name, value in env_example().items():
        assert "fake" in value.lower() or name == "WEBHOOK_SECRET", (
            f".env.example: {name} should look obviously fake"
        )
        for path in files:
            assert value not in path.read_text(encoding="utf-8"), f"{name}'s value in {path}"


@pytest.mark.parametrize("missing", sorted(env_example()))
def test_compose_refuses_to_run_without_a_secret(tmp_path: Path, missing: str) -> None:
    env_file = tmp_path / "env"
    env_file.write_text(
        "".join(f"{k}={v}\n" for k, v in env_example().items() if k != missing),
        encoding="utf-8",
    )
    result = compose("--profile", "*", "config", "-q", env_file=env_file)
    assert result.returncode != 0
    assert missing in result.stderr
    assert "in .env" in result.stderr  # the message says where to set it


def test_compose_refuses_to_run_with_an_empty_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("", encoding="utf-8")
    result = compose("config", "-q", env_file=env_file)
    assert result.returncode != 0
    assert re.search(r"required variable \w+ is missing a value", result.stderr), result.stderr
    assert any(name in result.stderr for name in env_example())


def test_env_file_is_ignored_by_git_and_docker() -> None:
    gitignore = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert ".env" in gitignore
    dockerignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert ".env" in dockerignore
    assert ENV_EXAMPLE.exists()


def test_dockerfile_copies_every_package() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {p.split(".")[0] for p in pyproject["tool"]["setuptools"]["packages"]}
    copied = set(
        re.findall(
            r"^COPY\s+(\S+)\s+\./\1/?\s*$",
            (ROOT / "Dockerfile").read_text(encoding="utf-8"),
            flags=re.MULTILINE,
        )
    )
    missing = (packages | {"examples", "deploy"}) - copied
    assert not missing, f"the Dockerfile does not COPY {sorted(missing)}"
    dockerignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    for excluded in (".venv/", ".git/", "tests/", "docs/images/", "bench/results/"):
        assert excluded in dockerignore


def _datasource_uids(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ds = node.get("datasource")
        if isinstance(ds, dict) and isinstance(ds.get("uid"), str):
            yield ds["uid"]
        for value in node.values():
            yield from _datasource_uids(value)
    elif isinstance(node, list):
        for value in node:
            yield from _datasource_uids(value)


def test_dashboards_use_the_provisioned_data_sources() -> None:
    provisioned = {
        ds["uid"]
        for ds in load_yaml(PROVISIONING / "datasources" / "placewatch.yaml")["datasources"]
    }
    builtin = {"grafana", "-- Grafana --", "-- Mixed --", "-- Dashboard --"}
    for path in sorted((ROOT / "dashboards" / "json").rglob("*.json")):
        used = set(_datasource_uids(json.loads(path.read_text(encoding="utf-8"))))
        unknown = {u for u in used if not u.startswith("$") and u not in builtin} - provisioned
        assert not unknown, f"{path.relative_to(ROOT)} uses data sources {sorted(unknown)}"
