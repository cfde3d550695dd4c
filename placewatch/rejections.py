"""Why a message was refused: machine-readable reasons and readable details.

Shared by native decoding (``ingest.decode``) and device mappings (``devices.mapping``), so a
validation error reads the same wherever it happens: the reason of the first error, and every
error as ``field=value: why``.
"""

from __future__ import annotations

import reprlib
from typing import Any

from pydantic import ValidationError

DETAIL_MAX = 1_000  # a dead letter's detail, not a copy of its payload
_VALUE_MAX = 60
# Values in details come from payloads: shown bounded in length and in nesting (a value nested
# as deep as JSON allows would otherwise exhaust the stack while being written out).
_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = _VALUE_MAX


class Refusal(Exception):
    """A message that cannot be stored: the dead-letter ``reason`` and a bounded ``detail``."""

    def __init__(self, reason: str, detail: str) -> None:
        detail = detail[:DETAIL_MAX]
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Reason:
    """Machine-readable rejection reasons (the ``reason`` column and metric label)."""

    INVALID_TOPIC = "invalid_topic"
    UNKNOWN_KIND = "unknown_kind"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    UNKNOWN_FIELD = "unknown_field"
    OUT_OF_RANGE = "out_of_range"
    INVALID_VALUE = "invalid_value"
    FUTURE_TIMESTAMP = "future_timestamp"
    TOO_OLD = "too_old"
    UNKNOWN_DEVICE = "unknown_device"
    KIND_MISMATCH = "kind_mismatch"
    STORAGE_ERROR = "storage_error"
    # Network server and SenML messages (see adapters/ and ingest.uplinks):
    NOT_AN_UPLINK = "not_an_uplink"  # a join, downlink or status event
    SIMULATED_UPLINK = "simulated_uplink"
    NOT_DECODED = "not_decoded"  # no payload formatter / codec on the network server
    QUARANTINED_DEVICE = "quarantined_device"
    MISSING_SETTING = "missing_setting"  # the device lacks a setting its model needs
    INVALID_SETTING = "invalid_setting"
    INVALID_UNIT = "invalid_unit"
    DECODE_ERROR = "decode_error"  # decoding itself failed unexpectedly: a placewatch bug


_REASON_BY_ERROR_TYPE = {
    "json_invalid": Reason.INVALID_JSON,
    "json_type": Reason.INVALID_JSON,
    "model_type": Reason.NOT_AN_OBJECT,
    "model_attributes_type": Reason.NOT_AN_OBJECT,
    "missing": Reason.MISSING_FIELD,
    "missing_measurement": Reason.MISSING_FIELD,
    "extra_forbidden": Reason.UNKNOWN_FIELD,
    "greater_than": Reason.OUT_OF_RANGE,
    "greater_than_equal": Reason.OUT_OF_RANGE,
    "less_than": Reason.OUT_OF_RANGE,
    "less_than_equal": Reason.OUT_OF_RANGE,
    "finite_number": Reason.OUT_OF_RANGE,
}


def describe(exc: ValidationError) -> tuple[str, str]:
    """The first error's reason, and every error as ``field=value: why``."""
    errors = exc.errors(include_url=False)
    reason = _REASON_BY_ERROR_TYPE.get(errors[0]["type"], Reason.INVALID_VALUE)
    parts = []
    for err in errors:
        field = ".".join(str(p) for p in err["loc"])
        if err["type"] in ("json_invalid", "json_type"):
            parts.append(err["msg"])
        elif err["type"] == "missing" or not field:
            parts.append(f"{field or 'payload'}: {err['msg']}")
        else:
            parts.append(f"{field}={short_repr(err.get('input'))}: {err['msg']}")
    detail = "; ".join(parts)
    return reason, detail[:DETAIL_MAX]


def short_repr(value: Any) -> str:
    """A payload value as a detail shows it: ``'open'``, ``140``, ``[1, 2]``, at most 60
    characters."""
    if isinstance(value, str):
        text = repr(value[: _VALUE_MAX + 1])
    elif isinstance(value, dict | list | tuple):
        text = _REPR.repr(value)
    else:
        text = str(value)
    return text if len(text) <= _VALUE_MAX else text[: _VALUE_MAX - 1] + "…"
