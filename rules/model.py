"""What every rule has in common: identity, selection, severity, escalation, and the outcome of
an evaluation (a transition of the rule's condition for one subject)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from placewatch.kinds import KINDS, MEASUREMENT_COLUMNS, PAYLOAD_MODELS, Kind
from rules.durations import Duration

Severity = Literal["info", "warning", "critical"]
SubjectType = Literal["device", "resident", "site"]


@dataclass(frozen=True, slots=True)
class DeviceView:
    """A registered device as rules see it."""

    council_id: str
    device_id: str
    kind: Kind
    model: str | None = None
    site: str | None = None
    ward: str | None = None
    resident_id: str | None = None
    tags: tuple[str, ...] = ()
    properties: dict[str, Any] = field(default_factory=dict)
    expected_interval_s: int | None = None

    def property_number(self, name: str) -> float | None:
        value = self.properties.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        return None


@dataclass(frozen=True, slots=True)
class Transition:
    """The rule's condition for a subject became true (``opens``) or cleared, at event time
    ``at`` (epoch seconds), with a plain-words summary and the numbers behind it."""

    opens: bool
    at: float
    summary: str
    observed: dict[str, Any]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class Selector(_Strict):
    """Which devices a rule applies to; every given criterion must match (lists mean any of)."""

    council: list[str] | None = None
    kind: list[Kind] | None = None
    site: list[str] | None = None
    ward: list[str] | None = None
    model: list[str] | None = None
    device: list[str] | None = None
    tag: list[str] | None = None

    _lists = field_validator("*", mode="before")(_as_list)

    def matches(self, d: DeviceView) -> bool:
        checks: tuple[tuple[list[Any] | None, Any], ...] = (
            (self.council, d.council_id),
            (self.kind, d.kind),
            (self.site, d.site),
            (self.ward, d.ward),
            (self.model, d.model),
            (self.device, d.device_id),
        )
        if any(wanted is not None and value not in wanted for wanted, value in checks):
            return False
        return self.tag is None or bool(set(self.tag) & set(d.tags))


class PropertyRef(_Strict):
    """A per-device setting from the registry, e.g. ``{property: alert_level_m}``."""

    property: str


Value = float | PropertyRef


def resolve(value: Value | None, device: DeviceView) -> float | None:
    if value is None or isinstance(value, float | int):
        return value
    return device.property_number(value.property)


def numeric_columns(kind: Kind) -> tuple[str, ...]:
    """The stored columns of a kind that hold numbers (not flags or text)."""
    fields = PAYLOAD_MODELS[kind].model_fields

    def numeric(name: str) -> bool:
        annotation = fields[name].annotation
        return bool({int, float} & set(get_args(annotation) or (annotation,)))

    return tuple(c for c in MEASUREMENT_COLUMNS[kind] if c in fields and numeric(c))


def measurement_field(name: str, info: ValidationInfo) -> str:
    """Validator for a rule's ``field``: a numeric measurement of the kinds it selects."""
    selector = info.data.get("select")
    kinds = (selector.kind if isinstance(selector, Selector) else None) or list(KINDS)
    known = sorted({c for k in kinds for c in numeric_columns(k)})
    if name not in known:
        raise ValueError(
            f"{name!r} is not a numeric measurement of {', '.join(map(str, kinds))}"
            f" (one of: {', '.join(known)})"
        )
    return name


class Escalation(_Strict):
    """Not acknowledged within ``after``: escalate (raise severity, notify again); then notify
    again every ``repeat`` while still unacknowledged, at most ``max_renotify`` times."""

    after: Duration
    severity: Severity | None = None
    repeat: Duration | None = None
    max_renotify: int = Field(default=3, ge=0)


class Rule(_Strict):
    """Base of every rule kind. Stream kinds implement ``lookback``/``step``; scheduled kinds
    (silence, objectives) are evaluated on a timer by ``rules.sweeps``."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$")
    description: str = ""
    severity: Severity = "warning"
    select: Selector = Selector()
    escalation: Escalation | None = None
    enabled: bool = True

    # Set by each kind.
    stream: ClassVar[bool] = True
    # Sensor kinds the rule can apply to at all (None: any).
    kinds: ClassVar[tuple[Kind, ...] | None] = None

    def subject_of(self, device: DeviceView) -> tuple[SubjectType, str] | None:
        """The subject an alert of this rule is about, for this device."""
        return "device", device.device_id

    def applies_to(self, device: DeviceView) -> bool:
        if self.kinds is not None and device.kind not in self.kinds:
            return False
        return self.select.matches(device)

    def lookback(self) -> timedelta:
        raise NotImplementedError

    def step(self, device: DeviceView, series: Any, i: int, active: bool) -> Transition | None:
        """Evaluate at the i-th reading of ``series``, seeing only readings within
        ``lookback()`` before it, so that live and backtest agree."""
        raise NotImplementedError
