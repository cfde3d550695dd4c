"""Webhook targets (SSRF): https only and public addresses only unless allowed, at
``teams apply`` (no DNS) and at delivery (every resolved address, the connection made to a
checked one). Real PostgreSQL, real dispatcher processes, real HTTP listeners."""

from __future__ import annotations

import argparse
import http.server
import ipaddress
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from notify.targets import TargetPolicy, address_problem, literal_address
from placewatch.settings import Settings
from teams.commands import run_teams_command
from teams.config import apply_teams, load_teams_file
from tests.notify.conftest import LOCAL_TARGETS, DeliveryRig, one_team, wait_until

ANYWHERE = TargetPolicy(
    True, (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
)  # registers anything: what the dispatcher then does is the point


# --- the policy -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("169.254.10.1", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "CGNAT"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff0e::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.10", "special-purpose"),
        ("198.18.0.1", "special-purpose"),
        ("::ffff:127.0.0.1", "IPv4-mapped 127.0.0.1: a loopback"),
        ("::ffff:169.254.169.254", "IPv4-mapped 169.254.169.254: the cloud metadata"),
        ("::ffff:10.0.0.1", "IPv4-mapped 10.0.0.1: a private (or special-purpose)"),
        ("64:ff9b::7f00:1", "NAT64 127.0.0.1: a loopback"),
        ("2002:7f00:1::", "6to4 127.0.0.1: a loopback"),
    ],
)
def test_addresses_that_are_not_public(address: str, problem: str) -> None:
    found = address_problem(ipaddress.ip_address(address))
    assert found is not None and problem in found


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0xa9fea9fe", "169.254.169.254"),
        ("example.org", None),
        ("1e100.net", None),
    ],
)
def test_literal_addresses_in_every_form(host: str, address: str | None) -> None:
    found = literal_address(host)
    assert (str(found) if found else None) == address


def test_urls_without_dns() -> None:
    strict = TargetPolicy()
    assert strict.url_refusal("https://hooks.example.org/x") is None
    assert strict.url_refusal("https://8.8.8.8/x") is None
    refusal = strict.url_refusal("http://hooks.example.org/x")
    assert refusal and "http is not allowed" in refusal
    refusal = strict.url_refusal("https://127.0.0.1/x")
    assert refusal and "loopback" in refusal
    refusal = strict.url_refusal("https://LocalHost./x")
    assert refusal and "loopback" in refusal
    refusal = strict.url_refusal("https://[::ffff:169.254.169.254]/latest/meta-data")
    assert refusal and "IPv4-mapped" in refusal and "cloud metadata" in refusal
    opted_in = TargetPolicy(True, (ipaddress.ip_network("10.20.0.0/16"),))
    assert opted_in.url_refusal("http://10.20.3.4:8080/x") is None
    assert opted_in.url_refusal("http://[::ffff:10.20.3.4]:8080/x") is None
    refusal = opted_in.url_refusal("http://10.21.0.1/x")
    assert refusal and "private" in refusal and "NOTIFY_ALLOWED_NETWORKS" in refusal


def test_settings_are_secure_by_default_and_take_a_list(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PLACEWATCH_NOTIFY_ALLOW_HTTP", "PLACEWATCH_NOTIFY_ALLOWED_NETWORKS"):
        monkeypatch.delenv(name, raising=False)
    default = TargetPolicy.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]
    assert default == TargetPolicy()
    monkeypatch.setenv("PLACEWATCH_NOTIFY_ALLOW_HTTP", "true")
    monkeypatch.setenv("PLACEWATCH_NOTIFY_ALLOWED_NETWORKS", "10.0.0.0/8, fd00::/8")
    policy = TargetPolicy.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]
    assert policy.allow_http
    assert [str(n) for n in policy.allowed_networks] == ["10.0.0.0/8", "fd00::/8"]
    monkeypatch.setenv("PLACEWATCH_NOTIFY_ALLOWED_NETWORKS", '["192.168.0.0/16"]')
    policy = TargetPolicy.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]
    assert [str(n) for n in policy.allowed_networks] == ["192.168.0.0/16"]


# --- teams apply ----------------------------------------------------------------------------


def _teams_file(tmp_path: Path, council: str, urls: list[str]) -> Path:
    hooks = "".join(f'      - {{id: hook{i}, url: "{u}"}}\n' for i, u in enumerate(urls))
    path = tmp_path / "teams.yaml"
    path.write_text(
        f"council: {council}\nteams:\n  - id: ops-{council}\n    name: Ops\n"
        f"    routes: [{{kinds: [bin_fill]}}]\n    webhooks:\n{hooks}"
    )
    return path


REFUSED_AT_APPLY = {
    "http://hooks.example.org/x": "http is not allowed",
    "https://127.0.0.1/x": "loopback",
    "https://localhost:8443/x": "loopback",
    "https://[::1]/x": "loopback",
    "https://[::ffff:127.0.0.1]/x": "IPv4-mapped",
    "https://169.254.169.254/latest/meta-data/": "cloud metadata",
    "https://10.0.0.5/x": "private",
    "https://0x7f.1/x": "loopback",
}


def test_apply_refuses_targets_naming_team_endpoint_url_and_reason(
    rig: DeliveryRig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = [*REFUSED_AT_APPLY, "https://hooks.example.org/ok"]
    path = _teams_file(tmp_path, rig.council, urls)
    settings = Settings(database_url=rig.database_url, _env_file=None)  # type: ignore[call-arg]
    args = argparse.Namespace(teams_command="apply", file=path)
    assert run_teams_command(args, settings) == 1
    err = capsys.readouterr().err
    for i, (url, reason) in enumerate(REFUSED_AT_APPLY.items()):
        line = next(x for x in err.splitlines() if f"webhook hook{i}:" in x)
        assert f"team ops-{rig.council}" in line and url in line and reason in line, line
    assert "hooks.example.org/ok" not in err
    # Nothing written: not even the team.
    assert rig.scalar("SELECT count(*) FROM teams WHERE council_id = %s", rig.council) == 0

    # The same file with the targets allowed (http, these networks) applies.
    with psycopg.connect(rig.database_url) as conn:
        apply_teams(conn, load_teams_file(path), ANYWHERE)
    assert rig.scalar("SELECT count(*) FROM webhook_endpoints") == len(urls)


def test_apply_does_not_resolve_names(rig: DeliveryRig, tmp_path: Path) -> None:
    # A name is checked where it is used, by the dispatcher: here it need not even exist.
    path = _teams_file(tmp_path, rig.council, ["https://no-such-host.invalid/x"])
    with psycopg.connect(rig.database_url) as conn:
        apply_teams(conn, load_teams_file(path), TargetPolicy())
    assert rig.scalar("SELECT count(*) FROM webhook_endpoints") == 1


# --- delivery -------------------------------------------------------------------------------


class Listener:
    """An HTTP server that notes every request it gets; answers 204, or a redirect."""

    def __init__(self, host: str = "127.0.0.1", redirect_to: str | None = None) -> None:
        requests: list[dict[str, Any]] = []
        self.requests = requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                requests.append({"path": self.path, "host": self.headers.get("host")})
                if redirect_to:
                    self.send_response(307)
                    self.send_header("location", redirect_to)
                else:
                    self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        self.server = Server((host, 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/hooks"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def _refusals(rig: DeliveryRig) -> dict[str, list[str]]:
    rows = rig.query(
        "SELECT d.endpoint_id, a.error, a.status FROM webhook_attempts a"
        " JOIN webhook_deliveries d USING (delivery_id) ORDER BY a.id"
    )
    out: dict[str, list[str]] = {}
    for r in rows:
        assert r["status"] is None
        out.setdefault(r["endpoint_id"], []).append(r["error"])
    return out


def test_dispatcher_refuses_private_targets_and_sends_nothing(
    rig: DeliveryRig, listener: Listener
) -> None:
    try:
        v6: Listener | None = Listener("::1")
    except OSError:
        v6 = None
    expected = {
        listener.url(): "127.0.0.1 is a loopback address",
        listener.url("localhost"): "localhost resolves to",
        listener.url("[::ffff:127.0.0.1]"): "IPv4-mapped 127.0.0.1: a loopback",
        listener.url("127.1"): "loopback",
        "http://169.254.169.254/latest/meta-data/": "the cloud metadata address",
        "http://[fe80::1]:9/": "link-local",
        "https://10.9.8.7:9/": "private",
        **({v6.url("[::1]"): "::1 is a loopback address"} if v6 else {}),
    }
    urls = list(expected)
    # Registered by a permissive apply, or a name that changed since.
    one_team(rig, *urls, targets=ANYWHERE)
    # http allowed, no network allowed: the addresses are what is refused.
    rig.dispatcher(notify_allow_http="true", notify_allowed_networks="")
    rig.open_alert()
    wait_until(
        lambda: len(_refusals(rig)) == len(urls), 30, "an attempt recorded for every endpoint"
    )
    refusals = _refusals(rig)
    for i, url in enumerate(urls):
        error = refusals[f"hook{i}"][0]
        assert error.startswith("refused: ") and expected[url] in error, (url, error)
    assert "loopback" in refusals["hook1"][0]  # localhost, resolved by the dispatcher
    assert listener.requests == []  # no request reached the local listener
    if v6 is not None:
        assert v6.requests == []
        v6.close()
    # Refused attempts are failed ones: retried (the name may resolve elsewhere later), counted.
    states = {d["state"] for d in rig.deliveries()}
    assert states == {"pending"}
    wait_until(lambda: rig.dispatcher_metric("placewatch_notify_attempts_total") > 0, 10, "metric")


def test_http_refused_unless_allowed_even_to_an_allowed_network(
    rig: DeliveryRig, listener: Listener
) -> None:
    one_team(rig, listener.url(), targets=ANYWHERE)
    rig.dispatcher(notify_allow_http="false")  # loopback allowed (LOCAL_TARGETS), http not
    rig.open_alert()
    wait_until(lambda: bool(_refusals(rig)), 30, "a refused attempt")
    (error, *_) = _refusals(rig)["hook0"]
    assert error.startswith("refused: http is not allowed")
    assert listener.requests == []


def test_opted_in_by_name_connects_to_the_checked_address_with_the_host_header(
    rig: DeliveryRig, listener: Listener
) -> None:
    assert "::1/128" in LOCAL_TARGETS["notify_allowed_networks"]  # localhost may be ::1 too
    one_team(rig, listener.url("localhost"), targets=TargetPolicy.local())
    rig.dispatcher()  # LOCAL_TARGETS: http and loopback allowed
    rig.open_alert()
    wait_until(lambda: len(listener.requests) == 1, 30, "delivered to localhost")
    # Connected by address; the request still names the host the URL does.
    assert listener.requests[0]["host"] == f"localhost:{listener.port}"
    wait_until(lambda: rig.deliveries()[0]["state"] == "delivered", 10, "recorded as delivered")


def test_a_redirect_is_not_followed(rig: DeliveryRig, listener: Listener) -> None:
    # The redirect points at an address the policy allows, even: redirects are never followed,
    # so one cannot lead a delivery to a forbidden target either.
    redirecting = Listener(redirect_to=listener.url())
    try:
        one_team(rig, redirecting.url(), targets=TargetPolicy.local())
        rig.dispatcher()
        rig.open_alert()
        wait_until(lambda: len(redirecting.requests) >= 1, 30, "the redirecting endpoint asked")
        wait_until(
            lambda: bool(rig.query("SELECT 1 FROM webhook_attempts")), 10, "attempt recorded"
        )
        (attempt,) = rig.query("SELECT status, error FROM webhook_attempts LIMIT 1")
        assert attempt["status"] == 307 and attempt["error"].startswith("HTTP 307")
        assert listener.requests == []
        assert rig.deliveries()[0]["state"] == "pending"
    finally:
        redirecting.close()
