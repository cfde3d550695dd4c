"""``placewatch demo``: the example borough through the whole pipeline, on one machine.

See ``DESCRIPTION`` (the command's help) for what it does; the parts: ``plan`` (the timeline),
``services`` (database and broker), ``children`` (the processes), ``watch`` and ``view``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import psycopg

from placewatch.demo import plan as demo_plan
from placewatch.demo.children import Child, Children
from placewatch.demo.services import Services, resolve
from placewatch.demo.view import View
from placewatch.demo.watch import Delivery, Snapshot, Watcher
from placewatch.settings import Settings

log = logging.getLogger("placewatch.demo")

RECEIVER = Path(__file__).resolve().parents[2] / "examples" / "webhook_receiver.py"


DESCRIPTION = """\
The example borough through the whole pipeline on this machine: ingest, a rules worker, the
webhook dispatcher and the API, with a local webhook receiver that verifies signatures.

Database: PLACEWATCH_DATABASE_URL if set (environment or .env), which the demo migrates and
fills (the borough, its teams, about 210,000 readings and their alerts); else a database
"placewatch_demo", created afresh each run, on the local PostgreSQL (127.0.0.1:5432) if it
lets us log in, else on an embedded PostgreSQL started for the run. Broker: PLACEWATCH_MQTT_HOST
and _PORT if set, else the local broker on 127.0.0.1:1883 if it takes an anonymous client, else
a private one (mosquitto if installed, else a Python broker).

It registers the borough and its teams, publishes the borough's past ten days as fast as
ingest takes them, then plays on accelerated (--catch-up: how long until the simulation meets
the clock) and in real time; a resident falls early in the accelerated part and another's
activity declines. Runs until Ctrl-C, SIGTERM, SIGHUP or --duration, then stops everything it
started and prints a summary."""


class Stop(Exception):
    """Ctrl-C, SIGTERM or SIGHUP: stop everything."""


def add_demo_parser(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="the example borough through the whole pipeline (embedded servers if need be)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop by itself after this many seconds from the start, with a summary "
        "(default: run until Ctrl-C, SIGTERM or SIGHUP)",
    )
    p.add_argument(
        "--catch-up",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long the accelerated live part takes to reach the clock (default: 60)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where the logs, the receiver's log and the generated scenario go (default: a new "
        "temporary directory)",
    )


def _port(preferred: int) -> int:
    """``preferred`` if it is free on 127.0.0.1, else any free port."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers will bind
        try:
            s.bind(("127.0.0.1", preferred))
        except OSError:
            s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def _signals() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP (the terminal closed) raise ``Stop`` once; while stopping,
    further ones are ignored."""
    stopping = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise Stop(signal.Signals(signum).name)

    old = {s: signal.signal(s, handler) for s in _STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _env(settings: Settings, services: Services, ports: dict[str, int]) -> dict[str, str]:
    from notify.signing import new_secret

    env = dict(os.environ)
    env.update(
        PLACEWATCH_DATABASE_URL=services.database_url,
        PLACEWATCH_MQTT_HOST=services.broker.host,
        PLACEWATCH_MQTT_PORT=str(services.broker.port),
        PLACEWATCH_INGEST_CLIENT_ID=f"placewatch-demo-{socket.gethostname()}-{os.getpid()}",
        PLACEWATCH_INGEST_SESSION_EXPIRY_S="600",
        PLACEWATCH_INGEST_HTTP_PORT=str(ports["ingest"]),
        PLACEWATCH_RULES_HTTP_PORT=str(ports["rules"]),
        PLACEWATCH_NOTIFY_HTTP_PORT=str(ports["notify"]),
        PLACEWATCH_API_PORT=str(ports["api"]),
    )
    if "public_url" not in settings.model_fields_set:
        env["PLACEWATCH_PUBLIC_URL"] = f"http://127.0.0.1:{ports['api']}"
    if settings.link_secret is None:
        env["PLACEWATCH_LINK_SECRET"] = secrets.token_urlsafe(32)
    env.setdefault("PLACEWATCH_DEMO_WEBHOOK_SECRET", new_secret())
    # The receiver is plain http on loopback, refused by default (docs/delivery.md).
    env.setdefault("PLACEWATCH_NOTIFY_ALLOW_HTTP", "true")
    env.setdefault("PLACEWATCH_NOTIFY_ALLOWED_NETWORKS", "127.0.0.0/8")
    return env


def _wait_ready(url: str, child: Child, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited ({child.proc.returncode}):\n{child.tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"{child.name} not ready at {url} after {timeout:.0f} s:\n{child.tail()}")


_ROTATED = ("received.jsonl", "summary.json")


def _rotate(workdir: Path) -> None:
    """A reused ``--workdir`` starts clean: the last run's logs, receiver log and summary are
    kept once as ``NAME.1``."""
    for path in [*(workdir / n for n in _ROTATED), *workdir.glob("*.log")]:
        if path.is_file():
            path.replace(path.with_name(path.name + ".1"))


class Demo:
    def __init__(self, args: argparse.Namespace, settings: Settings) -> None:
        self.args = args
        self.settings = settings
        self.started = time.monotonic()
        self.workdir: Path = args.workdir or Path(tempfile.mkdtemp(prefix="placewatch-demo-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        _rotate(self.workdir)
        self.received = self.workdir / "received.jsonl"
        self.services: Services | None = None
        self.children: Children | None = None
        self.watcher: Watcher | None = None
        self.timeline: demo_plan.Timeline | None = None
        self.times: dict[str, float] = {}
        self.last = Snapshot(0.0)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _setup(self, children: Children, receiver_url: str) -> Path:
        def run(name: str, *args: str) -> None:
            out = children.run(name, list(args), timeout=300)
            if out.returncode != 0:
                raise RuntimeError(f"placewatch {' '.join(args)} failed:\n{out.stdout[-2000:]}")

        run("migrate", "migrate")
        timeline, text = demo_plan.plan(datetime.now(UTC), self.args.catch_up)
        self.timeline = timeline
        scenario, teams = demo_plan.write_files(self.workdir, text, receiver_url)
        run("register", "devices", "import", str(scenario))
        run("teams", "teams", "apply", str(teams))
        return scenario

    def run(self) -> int:
        with _signals():
            try:
                self._run()
                return 0
            except Stop as why:
                log.info("stopping (%s)", why)
                return 130 if str(why) == "SIGINT" else 0
            # A step, a service or a server failed: say which in one line (with its log's
            # tail where there is one), and exit non-zero.
            except (RuntimeError, ValueError, OSError) as exc:
                log.error("%s", exc)
                return 1
            except psycopg.Error as exc:
                log.error("the database: %s", " ".join(str(exc).split()))
                return 1
            except subprocess.TimeoutExpired as exc:
                log.error(
                    "%s did not finish within %.0f s", " ".join(map(str, exc.cmd)), exc.timeout
                )
                return 1
            finally:
                # Cleaning up is bounded (a grace period, then SIGKILL): signals wait for it.
                for s in _STOP_SIGNALS:
                    signal.signal(s, signal.SIG_IGN)
                self._stop()

    def _run(self) -> None:
        print(f"placewatch demo: logs and generated files in {self.workdir}", flush=True)
        self.services = resolve(self.settings, self.workdir)
        ports = {
            "ingest": _port(9108),
            "rules": _port(9109),
            "notify": _port(9110),
            "api": _port(8080),
            "receiver": _port(8900),
        }
        receiver_url = f"http://127.0.0.1:{ports['receiver']}/webhooks/placewatch"
        env = _env(self.settings, self.services, ports)
        self.children = children = Children(env, self.workdir)
        scenario = self._setup(children, receiver_url)
        t = self.timeline
        assert t is not None
        self.times["setup"] = self.elapsed()
        log.info(
            "backfill %s to %s (%.1f days), then live from there at %.0fx until it meets the "
            "clock; the fall at %s",
            t.start.isoformat(),
            t.live.isoformat(),
            t.backfill_days,
            t.speed,
            t.fall.isoformat(),
        )
        if not RECEIVER.exists():
            raise RuntimeError(f"the webhook receiver {RECEIVER} is missing: run from a checkout")
        receiver = children.start(
            "receiver",
            [
                str(RECEIVER),
                "--port",
                str(ports["receiver"]),
                "--log",
                str(self.received),
                "--secret-env",
                "PLACEWATCH_DEMO_WEBHOOK_SECRET",
            ],
            module=False,
        )
        ingest = children.start("ingest", ["ingest"])
        services = [receiver, ingest]
        services.append(children.start("rules", ["rules", "run"]))
        services.append(children.start("notify", ["notify"]))
        services.append(children.start("api", ["api"]))
        _wait_ready(f"http://127.0.0.1:{ports['ingest']}/readyz", ingest, 60)
        links = [
            f"API (OpenAPI): http://127.0.0.1:{ports['api']}/docs",
            f"receiver: {receiver_url}",
            f"logs: {self.workdir}   stop: Ctrl-C",
            "dashboards: run the whole stack with docker compose (README, 'Run the whole stack';"
            " docs/dashboards.md), then http://127.0.0.1:3000",
        ]
        broker = self.services.broker
        print(
            f"database: {self.services.database.source}; broker: {broker.source}"
            f" ({broker.kind} on {broker.host}:{broker.port})",
            flush=True,
        )
        self.watcher = Watcher(self.services.database_url, self.received, self.started)
        sim = ["simulate", "--scenario", str(scenario), "--no-register", "--no-progress"]
        sim += ["--faults", "malformed=0.001,out_of_range=0.001"]
        # The past as native JSON: half the simulator's CPU of the networks' formats, on a
        # machine that runs everything else too. The live part comes as each device sends.
        backfill = children.start(
            "backfill", [*sim, "--start", t.start.isoformat(), "--until", t.live.isoformat()]
        )
        live: Child | None = None
        deadline = None if self.args.duration is None else self.started + self.args.duration
        with View(links) as view:
            while deadline is None or time.monotonic() < deadline:
                if live is None and not backfill.alive():
                    if backfill.proc.returncode != 0:
                        raise RuntimeError(f"the backfill failed:\n{backfill.tail()}")
                    self.times["backfill_published"] = self.elapsed() - self.times["setup"]
                    live_args = ["--format", "mixed", "--start", t.live.isoformat()]
                    live_args += ["--speed", f"{t.speed:.0f}"]
                    live = children.start("live", [*sim, *live_args])
                for c in [*services, *([live] if live is not None else [])]:
                    if not c.alive():
                        raise RuntimeError(f"{c.name} exited ({c.proc.returncode}):\n{c.tail()}")
                dead = self.services.dead()
                if dead is not None:
                    raise RuntimeError(dead)
                phase = (
                    f"backfill of {t.backfill_days:.1f} days"
                    if live is None
                    else f"live at {t.speed:.0f}x until it meets the clock, then real time"
                )
                self.last = self.watcher.poll(phase)
                self.last.incidents = self._incidents(self.last)
                view.update(self.last)
                time.sleep(1.0)

    def _incident_deliveries(self, s: Snapshot) -> tuple[Delivery | None, Delivery | None]:
        """The first care alert delivered for the fall (opened after it) and for the decline."""
        t = self.timeline
        assert t is not None
        fall = next(
            (
                d
                for d in s.deliveries
                if d.type == "alert.opened"
                and d.care
                and d.resident == t.fall_resident
                and d.opened_at is not None
                and d.opened_at >= t.fall
            ),
            None,
        )
        decline = next(
            (
                d
                for d in s.deliveries
                if d.type == "alert.opened"
                and d.resident == t.decline_resident
                and d.rule_kind == "activity_decline"
            ),
            None,
        )
        return fall, decline

    def _incidents(self, s: Snapshot) -> list[str]:
        t = self.timeline
        assert t is not None
        fall, decline = self._incident_deliveries(s)
        lines = []
        for label, d in (
            (f"the fall ({t.fall_resident}, {t.fall:%d %b %H:%M} UTC)", fall),
            (f"the decline ({t.decline_resident})", decline),
        ):
            status = f"{d.rule_id} delivered after {d.at:.0f} s" if d else "no alert delivered yet"
            lines.append(f"{label}: {status}")
        return lines

    def _stop(self) -> None:
        """Stop every process and server started here, whatever fails on the way, then print
        the summary (only of a run that got as far as publishing)."""
        try:
            if self.children is not None:
                order = ["live", "backfill", "ingest", "rules", "notify", "api", "receiver"]
                by_name = {c.name: c for c in self.children.started}
                self.children.stop_all([by_name[n] for n in order if n in by_name])
            if self.watcher is not None:
                with contextlib.suppress(Exception):
                    self.last = self.watcher.poll("stopped")
                self.watcher.close()
        finally:
            if self.services is not None:
                self.services.stop()
        if self.watcher is not None:
            self._summary()

    def _summary(self) -> None:
        s = self.last
        t = self.timeline
        assert self.services is not None and t is not None
        types = Counter(d.type for d in s.deliveries)
        care = s.first_care
        fall, decline = self._incident_deliveries(s)
        s.incidents = self._incidents(s)
        published = self.times.get("backfill_published")
        summary = {
            "database": self.services.database.source,
            "broker": self.services.broker.kind,
            "ran_s": round(self.elapsed(), 1),
            "setup_s": round(self.times.get("setup", 0.0), 1),
            "backfill_days": round(t.backfill_days, 2),
            "backfill_published_s": round(published, 1) if published is not None else None,
            "live_speed": round(t.speed),
            "readings": s.readings,
            "dead_letters": s.dead_letters,
            "open_alerts": s.open_alerts,
            "webhooks_delivered": len(s.deliveries),
            "first_care_alert_s": round(care.at, 1) if care else None,
            "first_care_alert": f"{care.rule_id}: {care.summary}" if care else None,
            "care_alerts_opened": sum(
                1 for d in s.deliveries if d.care and d.type == "alert.opened"
            ),
            "fall_alert_s": round(fall.at, 1) if fall else None,
            "decline_alert_s": round(decline.at, 1) if decline else None,
        }
        with contextlib.suppress(OSError):
            (self.workdir / "summary.json").write_text(json.dumps(summary, indent=2))
        print("== placewatch demo summary", flush=True)
        backfill = (
            f"backfill of {summary['backfill_days']} days published in {published:.0f} s"
            if published is not None
            else f"backfill of {summary['backfill_days']} days not yet all published"
        )
        print(
            f"ran {summary['ran_s']} s (setup {summary['setup_s']} s); {backfill}; "
            f"then live at {summary['live_speed']}x"
        )
        print(
            f"stored {s.readings:,} readings, {s.dead_letters:,} rejects; "
            f"{s.open_alerts} alerts open at the end"
        )
        print(
            f"{len(s.deliveries)} webhooks verified by the receiver: "
            + (", ".join(f"{t} {n}" for t, n in types.items()) or "none")
        )
        if care:
            print(f"first care alert delivered {care.at:.0f} s after start: {care.rule_id}")
            print(f"  {care.summary}")
        else:
            print("no care alert delivered")
        for line in s.incidents:
            print(line)
        print(f"logs, the receiver's log and summary.json: {self.workdir}", flush=True)


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    return Demo(args, settings).run()
