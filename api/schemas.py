"""Request and response models: the API's contract, and so its OpenAPI document.

Field names follow the alert event payload (``id``, ``subject``) so that an integrator reads
the same shape from a webhook and from the API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field

AlertState = Literal["open", "acknowledged", "resolved"]
Severity = Literal["info", "warning", "critical"]
SensorKind = Literal["bin_fill", "air_quality", "flood_level", "home_activity"]
DeviceStatus = Literal["ok", "silent"]

# PostgreSQL text and jsonb cannot hold NUL: refuse it at the edge (422) rather than fail in
# the database (500). In the pattern, so the OpenAPI document says so too.
NO_NUL = r"^[^\x00]*$"
# ... and a required note must say something.
NOTE_TEXT = r"^[^\x00]*\S[^\x00]*$"
NOTE_MAX = 2000
DEVICE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
MAX_ID = 2**63 - 1  # bigint

# An optional exact-match filter on a text column (site, ward, rule, resident).
TextQuery = Annotated[str | None, Query(min_length=1, max_length=200, pattern=NO_NUL)]


class Problem(BaseModel):
    """Every error answer: a stable machine-readable code and a sentence for people."""

    error: str = Field(examples=["not_found"])
    detail: str = Field(examples=["no alert 42 visible to this team"])


class FieldProblem(BaseModel):
    location: str = Field(examples=["query.limit"])
    message: str = Field(examples=["Input should be less than or equal to 500"])


class ValidationProblem(Problem):
    problems: list[FieldProblem]


class Subject(BaseModel):
    type: Literal["device", "resident", "site"]
    id: str


class Alert(BaseModel):
    id: int
    council_id: str
    rule_id: str
    rule_kind: str
    subject: Subject
    sensor_kind: SensorKind | None
    site: str | None
    resident_id: str | None = Field(description="Pseudonymous resident id; null for street alerts")
    severity: Severity = Field(description="Current severity (escalation may raise it)")
    state: AlertState
    summary: str
    observed: dict[str, Any] = Field(
        description="The explanation: what was observed against what was expected or the "
        "threshold; keys depend on the rule kind"
    )
    opened_at: datetime = Field(description="Event time at which the condition was met")
    created_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution_note: str | None
    resolution: dict[str, Any] | None
    escalations: int
    last_notified_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> Self:
        return cls.model_validate(
            {
                **row,
                "id": row["alert_id"],
                "subject": {"type": row["subject_type"], "id": row["subject_id"]},
            }
        )


class AlertEvent(BaseModel):
    id: int
    event: Literal["opened", "acknowledged", "escalated", "renotified", "resolved"]
    at: datetime
    actor: str = Field(examples=["team:north-carers/key:k3v9q2m1x8ab"])
    detail: dict[str, Any]


class AlertDetail(Alert):
    events: list[AlertEvent] = Field(description="Every transition, oldest first")


class AlertPage(BaseModel):
    alerts: list[Alert] = Field(description="Newest first (by id)")
    next_before: int | None = Field(
        description="Pass as `before` for the next page; null when this is the last page"
    )


class AcknowledgeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(default=None, max_length=NOTE_MAX, pattern=NO_NUL)


class ResolveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(
        min_length=1, max_length=NOTE_MAX, pattern=NOTE_TEXT, description="Why it is resolved"
    )


class Device(BaseModel):
    council_id: str
    device_id: str
    kind: SensorKind
    model: str | None
    site: str | None
    ward: str | None
    latitude: float | None
    longitude: float | None
    resident_id: str | None
    expected_interval_s: int | None
    tags: list[str]
    first_seen: datetime | None
    last_seen: datetime | None = Field(description="When the platform last heard the device")
    last_reading_at: datetime | None = Field(description="Newest event time it reported")
    status: DeviceStatus = Field(
        description="silent: never heard, or not heard for 3 times expected_interval_s"
    )
    open_alerts: int = Field(
        description="Unresolved (open or acknowledged) alerts about this device that the "
        "team can see"
    )


class DevicePage(BaseModel):
    devices: list[Device] = Field(description="By device id")
    next_offset: int | None = Field(description="Pass as `offset` for the next page, or null")


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    detail: str | None = None
