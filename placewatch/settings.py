"""Configuration from the environment (prefix ``PLACEWATCH_``) or a ``.env`` file."""

from __future__ import annotations

import json
import socket
from ipaddress import IPv4Network, IPv6Network
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _default_client_id() -> str:
    # Fixed per host: a persistent session is found again after a restart on the same host.
    return f"placewatch-ingest-{socket.gethostname()}"


MIN_LINK_SECRET = 16  # characters of PLACEWATCH_LINK_SECRET


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PLACEWATCH_", env_file=".env", extra="ignore")

    database_url: str = "postgresql://127.0.0.1:5432/placewatch"
    # auto: use TimescaleDB when the server offers the extension; on/off force the choice.
    timescaledb: Literal["auto", "on", "off"] = "auto"

    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    mqtt_keepalive_s: int = 30
    # TLS to the broker (broker/README.md): verify its certificate against the system's CAs, or
    # only against mqtt_tls_ca_file (a private CA) if set; the certificate must name mqtt_host.
    # A client certificate and key for brokers that require one (require_certificate true).
    mqtt_tls: bool = False
    mqtt_tls_ca_file: str | None = None
    mqtt_tls_cert_file: str | None = None
    mqtt_tls_key_file: str | None = None
    topic_prefix: str = "placewatch"

    ingest_client_id: str = Field(default_factory=_default_client_id)
    # Set to run N ingest replicas on one shared subscription ($share/<group>/...).
    ingest_shared_group: str | None = None
    ingest_session_expiry_s: int = 7 * 24 * 3600
    # The most unacknowledged messages ingest holds: sent to the broker as MQTT 5 Receive Maximum
    # and enforced by ingest too (see ingest/mqtt.py). Bounds memory when the database stalls.
    ingest_receive_maximum: int = Field(default=10_000, ge=1, le=65_535)
    # ... and at most this many payload bytes (a few large messages must not exhaust memory).
    ingest_max_held_mib: int = Field(default=64, ge=1)
    ingest_batch_max: int = Field(default=5_000, ge=1)
    ingest_batch_linger_ms: int = Field(default=50, ge=0)
    # Readings stamped further ahead than this are rejected (clock faults).
    ingest_max_future_s: int = 300
    # ... and readings older than this (days; 0 = no limit), typically a device whose clock was
    # never set. Raise it to backfill history.
    ingest_max_age_days: int = Field(default=366, ge=0)
    ingest_registry_ttl_s: int = 60
    ingest_http_host: str = "127.0.0.1"
    ingest_http_port: int = 9108
    ingest_retry_max_s: float = 10.0
    # On SIGTERM: how long to keep trying to commit what is held before leaving it to the broker.
    ingest_stop_timeout_s: float = 15.0

    # Announce committed readings to the rules workers (rule_inbox, same transaction). Turn off
    # only where no rules worker runs, or the inbox grows by a row per device and batch.
    ingest_rules_inbox: bool = True
    # Network server uplink topics, as bridged into the broker (The Things Stack v3 and
    # ChirpStack v4 by default; see docs/devices.md). A JSON list; [] for native only.
    ingest_network_topics: list[str] = Field(
        default_factory=lambda: ["v3/+/devices/+/up", "application/+/device/+/event/up"]
    )

    # Rules workers. Rule files: the shipped defaults (unless turned off) plus
    # PLACEWATCH_RULES_PATH, files or directories separated by the OS path separator (":").
    rules_defaults: bool = True
    rules_path: str = ""
    # Devices whose new readings one transaction evaluates (a worker takes whole devices).
    rules_batch: int = Field(default=500, ge=1)
    # Longest sleep between looks at the inbox and the timers (a NOTIFY wakes a worker at once).
    rules_poll_s: float = Field(default=1.0, gt=0)
    # Timer sweeps (silence, objectives, escalation, reconciliation) run at their own deadlines
    # and at least this often: how soon a silent device heard again is cleared, say.
    rules_sweep_max_s: float = Field(default=5.0, gt=0)
    # Alerts of a removed rule, or of one that no longer selects its device, are resolved once
    # no worker has evaluated them for this long (so that workers still on the old rule files
    # during a rolling reload do not fight the ones on the new).
    rules_reconcile_after_s: float = Field(default=600.0, ge=0)
    # After ingest recovers (restart, database or broker back, backlog drained) silence alerts
    # wait this long, so that devices whose backlog is still being read are not called silent.
    rules_silence_grace_s: float = Field(default=120.0, ge=0)
    # A reading older than this behind what a rule has already evaluated for its subject is
    # stored but not evaluated again (re-stepping a whole week for one straggler is no use).
    rules_allowed_lateness_s: float = Field(default=6 * 3600, ge=0)
    # Care rules evaluate up to the last tick at least this long ago, so readings still in
    # flight are in (docs/care.md).
    rules_care_settle_s: float = Field(default=120.0, ge=0)
    rules_http_host: str = "127.0.0.1"
    rules_http_port: int = 9109

    # Alert delivery (placewatch notify). Retries back off exponentially with jitter from
    # notify_backoff_base_s up to notify_backoff_max_s; a delivery not made within
    # notify_give_up_after_s is dead-lettered (placewatch webhooks redeliver sends it again).
    notify_batch: int = Field(default=200, ge=1)
    notify_poll_s: float = Field(default=1.0, gt=0)
    notify_timeout_s: float = Field(default=10.0, gt=0)
    notify_backoff_base_s: float = Field(default=5.0, gt=0)
    notify_backoff_max_s: float = Field(default=900.0, gt=0)
    notify_give_up_after_s: float = Field(default=24 * 3600.0, gt=0)
    # Consecutive failures that open an endpoint's circuit, and for how long it stays open
    # (then one probe at a time until a delivery succeeds).
    notify_breaker_failures: int = Field(default=5, ge=1)
    notify_breaker_open_s: float = Field(default=60.0, gt=0)
    notify_http_host: str = "127.0.0.1"
    notify_http_port: int = 9110
    # Webhook targets (docs/delivery.md, "Webhook targets"): https only, and only hosts whose
    # every address is public, unless plain http is allowed here and/or the addresses are in
    # one of these networks (comma-separated, or a JSON list: "10.20.0.0/16,fd00:1::/64").
    notify_allow_http: bool = False
    notify_allowed_networks: Annotated[list[IPv4Network | IPv6Network], NoDecode] = Field(
        default_factory=list
    )

    # Acknowledge links in alert events: signed with this secret, valid this long, pointing at
    # the API's public address. Required by notify and the API.
    link_secret: SecretStr | None = None
    link_ttl_s: int = Field(default=72 * 3600, ge=60)
    public_url: str = "http://127.0.0.1:8080"

    # The alerts API (placewatch api).
    api_host: str = "127.0.0.1"
    api_port: int = 8080

    # Retention (storage/retention.py, docs/storage.md "Retention"). Periods in days by data
    # class, overriding the database's (migration 0008), as JSON: {"dead_letters": 60}. Only
    # `placewatch storage retention`, run as the owner, records them; the rules workers delete
    # by the recorded periods every retention_interval_s, retention_batch rows a transaction,
    # for at most retention_budget_s a run.
    retention_days: dict[str, Annotated[int, Field(ge=1)]] = Field(default_factory=dict)
    retention_interval_s: float = Field(default=3600.0, gt=0)
    retention_batch: int = Field(default=5_000, ge=1, le=100_000)
    retention_budget_s: float = Field(default=10.0, gt=0)

    # Failpoint for the crash tests: exit abruptly after this many commits, before acknowledging.
    test_exit_after_commits: int | None = None

    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "text"

    @field_validator("link_secret")
    @classmethod
    def _link_secret_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty or short key would sign links anyone could forge; set means set properly.
        if value is not None and len(value.get_secret_value().strip()) < MIN_LINK_SECRET:
            raise ValueError(
                f"PLACEWATCH_LINK_SECRET must be at least {MIN_LINK_SECRET} characters (e.g. "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        return value

    @field_validator("retention_days")
    @classmethod
    def _known_classes(cls, value: dict[str, int]) -> dict[str, int]:
        from storage.retention import CLASSES

        unknown = sorted(set(value) - set(CLASSES))
        if unknown:
            raise ValueError(f"unknown data classes {unknown}; known: {sorted(CLASSES)}")
        return value

    @field_validator("notify_allowed_networks", mode="before")
    @classmethod
    def _networks_from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value
