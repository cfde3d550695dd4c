"""Expand a panel's SQL the way Grafana's PostgreSQL data source does, so that tests can run the
exact statement Grafana would send against a real PostgreSQL.

Grafana expands in two steps, and :func:`expand` does both in its order:

1. Frontend (:func:`interpolate`): template variables, through ``@grafana/scenes``
   ``sceneInterpolator.ts`` (the ``VARIABLE_REGEX`` of ``variables/constants.ts``) and its
   ``formatRegistry.ts`` for ``${name:format}``; without a format, through the SQL data sources'
   ``interpolateVariable`` (Grafana's
   ``public/app/features/plugins/sql/datasource/SqlDatasource.ts``, ``quoteLiteral`` of
   ``PostgresQueryModel.ts``). ``$__interval`` and ``$__interval_ms`` are scoped variables there,
   formatted with ``secondsToHms`` of ``packages/grafana-data/src/datetime/rangeutil.ts``.
2. Backend (:func:`expand_macros`): ``pkg/tsdb/grafana-postgresql-datasource/macros.go`` as read
   on grafana/grafana main at 446b3e1f (2026), minus main's newest keeping of SQLCommenter tags
   (#127894): so like the 12.x releases that have its quote-aware ``stripSQLComments``
   (#121772; 12.1.11, 12.2.9, 12.3.7, 12.4.3). Comments are stripped, then come the global
   substitutions of ``Interpolate`` in ``.../sqleng/sql_engine.go`` (``$__interval_ms``,
   ``$__interval``, ``$__unixEpochFrom()``, ``$__unixEpochTo()``), then every ``$name(args)``
   macro. Intervals are parsed by ``ParseInterval`` of grafana-plugin-sdk-go
   ``backend/gtime/gtime.go``; main's "interval must be positive" check is kept (older releases
   write the division by zero into the SQL instead).

Stricter than Grafana on purpose: a template variable that is not given, or an unknown format,
raises :class:`MacroError` instead of being left in the SQL.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

__all__ = [
    "MacroError",
    "TimeRange",
    "Variable",
    "expand",
    "expand_macros",
    "interpolate",
]


class MacroError(ValueError):
    """An unknown macro, a macro with unusable arguments, or an unknown template variable."""


_NAME = re.compile(r"\w+", re.ASCII)


@dataclass(frozen=True)
class Variable:
    """A dashboard template variable as the panel query sees it."""

    name: str
    values: tuple[str, ...]  # the current selection (all options when "All" is selected)
    multi: bool = False  # multi-value or include-All variable

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name) or self.name.startswith("__"):
            raise ValueError(f"invalid variable name {self.name!r}")
        if not isinstance(self.values, tuple) or not all(isinstance(v, str) for v in self.values):
            raise ValueError(f"variable {self.name!r}: values must be a tuple of str")
        if not self.multi and len(self.values) != 1:
            raise ValueError(f"variable {self.name!r} is single-valued but has {self.values!r}")


@dataclass(frozen=True)
class TimeRange:
    """The dashboard's time range; both ends timezone-aware."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.utcoffset() is None or self.end.utcoffset() is None:
            raise ValueError("TimeRange needs timezone-aware datetimes")


# --- frontend: template variables --------------------------------------------------------------

# VARIABLE_REGEX of @grafana/scenes: $var, [[var]], [[var:fmt]], ${var}, ${var.path}, ${var:fmt}
_VARIABLE_RE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}", re.ASCII
)

# A single-valued variable's value is a str in Grafana, a multi/include-All one's a list.
_Value = str | list[str]


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sql_default(value: _Value) -> str:
    # SqlDatasource.interpolateVariable, the format Grafana passes when the query names none.
    # (It would also quote a str of a multi variable; ours always have lists.)
    if isinstance(value, str):
        return value.replace("'", "''")
    return ",".join(_quote_literal(v) for v in value)


def _sql_string(v: str) -> str:
    # scenes' sqlStringFormatter also turns " into \" (Grafana core's did not).
    return "'" + v.replace("'", "''").replace('"', '\\"') + "'"


def _each(fmt: Callable[[str], str]) -> Callable[[_Value], str]:
    return lambda value: fmt(value) if isinstance(value, str) else ",".join(map(fmt, value))


def _glob(value: _Value) -> str:
    if isinstance(value, list) and len(value) > 1:
        return "{" + ",".join(value) + "}"
    return value if isinstance(value, str) else ",".join(value)


def _joined(sep: str) -> Callable[[_Value], str]:
    return lambda value: value if isinstance(value, str) else sep.join(value)


# formatRegistry.ts entries that make sense in SQL; String(array) in JS joins with ','.
_FORMATS: Mapping[str, Callable[[_Value], str]] = {
    "raw": _joined(","),
    "csv": _joined(","),
    "pipe": _joined("|"),
    "glob": _glob,
    "singlequote": _each(lambda v: "'" + v.replace("'", "\\'") + "'"),
    "doublequote": _each(lambda v: '"' + v.replace('"', '\\"') + '"'),
    "sqlstring": _each(_sql_string),
}


def _seconds_to_hms(seconds: float) -> str:
    """rangeutil.secondsToHms: the largest whole unit only, so 90 s is '1m'."""
    years = math.floor(seconds / 31536000)
    if years:
        return f"{years}y"
    days = math.floor((seconds % 31536000) / 86400)
    if days:
        return f"{days}d"
    hours = math.floor(((seconds % 31536000) % 86400) / 3600)
    if hours:
        return f"{hours}h"
    minutes = math.floor((((seconds % 31536000) % 86400) % 3600) / 60)
    if minutes:
        return f"{minutes}m"
    secs = math.floor((((seconds % 31536000) % 86400) % 3600) % 60)
    if secs:
        return f"{secs}s"
    millis = math.floor(seconds * 1000.0)
    if millis:
        return f"{millis}ms"
    return "less than a millisecond"


def _interval_ms(interval: timedelta) -> int:
    """The request's intervalMs: Grafana never asks for less than 1 ms."""
    if interval < timedelta(milliseconds=1):
        raise ValueError(f"interval must be at least 1 ms, got {interval!r}")
    return interval // timedelta(milliseconds=1)


def interpolate(
    sql: str, variables: Sequence[Variable], *, interval: timedelta | None = None
) -> str:
    """Replace template variables as Grafana's frontend does before sending the query.

    ``$__name`` references (macros and Grafana's global variables) are left for the backend,
    except ``$__interval`` and ``$__interval_ms`` when ``interval`` is given. ``$1`` is left too.
    """
    by_name: dict[str, _Value] = {}
    for var in variables:
        if var.name in by_name:
            raise ValueError(f"variable {var.name!r} given twice")
        by_name[var.name] = list(var.values) if var.multi else var.values[0]
    if interval is not None:
        ms = _interval_ms(interval)
        by_name["__interval"] = _seconds_to_hms(ms / 1000)
        by_name["__interval_ms"] = str(ms)

    def replace(match: re.Match[str]) -> str:
        name = match[1] or match[2] or match[4]
        fmt = match[3] or match[6]
        if name not in by_name:
            if name.startswith("__") or name.isdigit():
                return match[0]
            raise MacroError(f"unknown variable {name!r} in {match[0]!r}")
        if match[5] is not None:
            raise MacroError(f"field paths are not supported: {match[0]!r}")
        value = by_name[name]
        if fmt is None:
            return _sql_default(value)
        formatter = _FORMATS.get(fmt)
        if formatter is None:
            raise MacroError(f"unsupported variable format {fmt!r} in {match[0]!r}")
        return formatter(value)

    return _VARIABLE_RE.sub(replace, sql)


# --- backend: comments, global substitutions, macros ---------------------------------------------


def _is_dollar_tag_char(c: str) -> bool:
    return c == "_" or ("a" <= c <= "z") or ("A" <= c <= "Z") or ("0" <= c <= "9")


def _strip_comments(sql: str) -> str:
    """macros.go stripSQLComments: drop -- and /* */ comments outside '...', "..." and $$...$$."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c == "$":
            j = i + 1
            closing = ""
            if j < n and sql[j] == "$":
                closing = "$$"
            elif j < n and _is_dollar_tag_char(sql[j]) and not sql[j].isdigit():
                k = j + 1
                while k < n and _is_dollar_tag_char(sql[k]):
                    k += 1
                if k < n and sql[k] == "$":
                    closing = sql[i : k + 1]
            if not closing:  # a macro ($__timeFrom()) or a parameter ($1)
                out.append(c)
                i += 1
                continue
            end = sql.find(closing, i + len(closing))
            end = n if end < 0 else end + len(closing)
            out.append(sql[i:end])
            i = end
        elif c in "'\"":
            j = i + 1
            while j < n:
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:  # doubled quote
                        j += 2
                        continue
                    j += 1
                    break
                j += 1
            out.append(sql[i:j])
            i = j
        elif c == "/" and i + 1 < n and sql[i + 1] == "*":
            # Not nested; an unclosed comment leaves its last character, as Grafana's loop does.
            i += 2
            while i + 1 < n:
                if sql[i] == "*" and sql[i + 1] == "/":
                    i += 2
                    break
                i += 1
        elif c == "-" and i + 1 < n and sql[i + 1] == "-":
            while i < n and sql[i] != "\n":
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NS = 1_000_000_000


def _unix(t: datetime) -> int:
    """Go's Time.Unix(): whole seconds, rounded down."""
    d = t - _EPOCH
    return d.days * 86400 + d.seconds


def _unix_nano(t: datetime) -> int:
    d = t - _EPOCH
    return (d.days * 86400 + d.seconds) * _NS + d.microseconds * 1000


def _rfc3339_nano(t: datetime) -> str:
    """Go's t.UTC().Format(time.RFC3339Nano): trailing zeros of the fraction dropped."""
    u = t.astimezone(UTC)
    text = f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
    if u.microsecond:
        text += "." + f"{u.microsecond:06d}".rstrip("0")
    return text + "Z"


def _format_interval(ns: int) -> str:
    """gtime.FormatInterval, the backend's $__interval."""
    for unit, size in (
        ("y", 365 * 86400 * _NS),
        ("d", 86400 * _NS),
        ("h", 3600 * _NS),
        ("m", 60 * _NS),
        ("s", _NS),
        ("ms", 1_000_000),
    ):
        if ns >= size:
            return f"{ns // size}{unit}"
    return "1ms"


def _to_ns(interval: timedelta) -> int:
    return (interval.days * 86400 + interval.seconds) * _NS + interval.microseconds * 1000


_GO_UNITS = {
    "ns": 1,
    "us": 1000,
    "\u00b5s": 1000,  # micro sign
    "\u03bcs": 1000,  # Greek mu
    "ms": 1_000_000,
    "s": _NS,
    "m": 60 * _NS,
    "h": 3600 * _NS,
}
_MAX_NS = 1 << 63


def _go_parse_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds; ValueError when Go returns an error."""
    s = text
    neg = False
    if s[:1] in ("-", "+"):
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(f"invalid duration {text!r}")
    total = 0
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            raise ValueError(f"invalid duration {text!r}")
        k = 0
        whole = 0
        while k < len(s) and "0" <= s[k] <= "9":
            whole = whole * 10 + int(s[k])
            if whole > _MAX_NS:
                raise ValueError(f"invalid duration {text!r}")
            k += 1
        pre = k > 0
        s = s[k:]
        frac, scale, post = 0, 1.0, False
        if s[:1] == ".":
            s = s[1:]
            k = 0
            overflow = False
            while k < len(s) and "0" <= s[k] <= "9":
                # Like Go's leadingFraction: digits past int64 precision are ignored.
                if not overflow and frac <= (_MAX_NS - 1) // 10:
                    more = frac * 10 + int(s[k])
                    overflow = more > _MAX_NS
                    if not overflow:
                        frac, scale = more, scale * 10
                else:
                    overflow = True
                k += 1
            post = k > 0
            s = s[k:]
        if not pre and not post:
            raise ValueError(f"invalid duration {text!r}")
        k = 0
        while k < len(s) and not (s[k] == "." or "0" <= s[k] <= "9"):
            k += 1
        if k == 0:
            raise ValueError(f"missing unit in duration {text!r}")
        unit = _GO_UNITS.get(s[:k])
        if unit is None:
            raise ValueError(f"unknown unit {s[:k]!r} in duration {text!r}")
        s = s[k:]
        value = whole * unit
        if frac:
            value += int(float(frac) * (float(unit) / scale))  # Go does this in float64 too
        total += value
        if value > _MAX_NS or total > _MAX_NS:
            raise ValueError(f"invalid duration {text!r}")
    if not neg and total > _MAX_NS - 1:
        raise ValueError(f"invalid duration {text!r}")
    return -total if neg else total


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _go_add_date(t: datetime, years: int, months: int, days: int) -> datetime:
    """Go's Time.AddDate: out-of-range days roll over (Jan 31 + 1 month is Mar 2 or 3)."""
    month0 = t.month - 1 + months
    first = t.replace(year=t.year + years + month0 // 12, month=month0 % 12 + 1, day=1)
    return first + timedelta(days=t.day - 1 + days)


_DATE_UNIT = re.compile(r"([0-9]+)([dwMy])")


def _parse_interval(text: str) -> int:
    """gtime.ParseInterval, in nanoseconds: d, w, M, y are calendar steps from now (UTC)."""
    m = _DATE_UNIT.fullmatch(text)
    if m is None:
        return _go_parse_duration(text)
    num, unit = int(m[1]), m[2]
    now = _utcnow()
    try:
        if unit == "y":
            later = _go_add_date(now, num, 0, 0)
        elif unit == "M":
            later = _go_add_date(now, 0, num, 0)
        else:
            later = _go_add_date(now, 0, 0, num * 7 if unit == "w" else num)
    except (OverflowError, ValueError) as exc:
        raise ValueError(f"interval out of range: {text!r}") from exc
    return _to_ns(later - now)


def _go_seconds(ns: int) -> float:
    """Go's Duration.Seconds()."""
    sec, rest = divmod(abs(ns), _NS)
    sign = -1 if ns < 0 else 1
    return float(sign * sec) + float(sign * rest) / 1e9


def _go_v(x: float) -> str:
    """fmt's %v of a float64 (%g, shortest digits): exponent form below 1e-4 and from 1e6 on, so
    12 days is 1.0368e+06."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if x == 0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    sign = "-" if x < 0 else ""
    # repr gives the same shortest round-trip digits as Go's strconv.
    tup = Decimal(repr(abs(x))).normalize().as_tuple()
    digits = "".join(map(str, tup.digits))
    assert isinstance(tup.exponent, int)
    nd = len(digits)
    dp = nd + tup.exponent  # position of the decimal point
    exp = dp - 1
    if exp < -4 or exp >= 6:  # %g with shortest precision decides with precision 6
        mantissa = digits[0] + ("." + digits[1:] if nd > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if dp <= 0:
        return f"{sign}0.{'0' * -dp}{digits}"
    if dp >= nd:
        return f"{sign}{digits}{'0' * (dp - nd)}"
    return f"{sign}{digits[:dp]}.{digits[dp:]}"


_GO_FLOAT = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    r"|0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+"
    r"|(?i:inf|infinity))|(?i:nan)"
)


def _check_fill(fill: str) -> None:
    """sqleng.SetupFillmode: NULL, previous or a number. The fill only changes the response,
    never the SQL, but a bad one fails the query."""
    if fill in ("NULL", "previous"):
        return
    if _GO_FLOAT.fullmatch(fill):
        body = fill.lstrip("+-")
        value = float.fromhex(fill) if body[:2] in ("0x", "0X") else float(fill)
        if not math.isinf(value) or body.lower().startswith("inf"):
            return
    raise MacroError(f"error parsing fill value {fill}")


def _group_seconds(name: str, args: list[str]) -> float:
    if len(args) < 2:
        raise MacroError(f"macro {name} needs time column and interval and optional fill value")
    try:
        interval = _parse_interval(args[1].strip("'"))
    except ValueError:
        raise MacroError(f"error parsing interval {args[1]}") from None
    if interval <= 0:
        raise MacroError(f"interval must be positive, got {args[1]}")
    if len(args) == 3:  # a fourth argument and beyond are ignored, no error
        _check_fill(args[2])
    return _go_seconds(interval)


def _evaluate(name: str, args: list[str], time_range: TimeRange, timescaledb: bool) -> str:
    # args is never empty (Go's strings.Split), so Grafana's "missing time column" checks never
    # fire: $__timeFilter() expands with an empty column.
    start, end = time_range.start, time_range.end
    if name == "__time":
        return f'{args[0]} AS "time"'
    if name == "__timeEpoch":
        return f'extract(epoch from {args[0]}) as "time"'
    if name == "__timeFilter":
        return f"{args[0]} BETWEEN '{_rfc3339_nano(start)}' AND '{_rfc3339_nano(end)}'"
    if name == "__timeFrom":
        return f"'{_rfc3339_nano(start)}'"
    if name == "__timeTo":
        return f"'{_rfc3339_nano(end)}'"
    if name == "__timeGroup":
        secs = _group_seconds(name, args)
        if timescaledb:
            return f"time_bucket('{secs:.3f}s',{args[0]})"
        return f"floor(extract(epoch from {args[0]})/{_go_v(secs)})*{_go_v(secs)}"
    if name == "__timeGroupAlias":
        return _evaluate("__timeGroup", args, time_range, timescaledb) + ' AS "time"'
    if name == "__unixEpochFilter":
        return f"{args[0]} >= {_unix(start)} AND {args[0]} <= {_unix(end)}"
    if name == "__unixEpochNanoFilter":
        return f"{args[0]} >= {_unix_nano(start)} AND {args[0]} <= {_unix_nano(end)}"
    if name == "__unixEpochNanoFrom":
        return str(_unix_nano(start))
    if name == "__unixEpochNanoTo":
        return str(_unix_nano(end))
    if name == "__unixEpochGroup":
        secs = _group_seconds(name, args)
        return f"floor(({args[0]})/{_go_v(secs)})*{_go_v(secs)}"
    if name == "__unixEpochGroupAlias":
        return _evaluate("__unixEpochGroup", args, time_range, timescaledb) + ' AS "time"'
    raise MacroError(f'unknown macro "{name}"')


# Any $name(...) is a macro call; the arguments end at the first ')', so nested parentheses
# cut the call short.
_MACRO_RE = re.compile(r"\$([_a-zA-Z0-9]+)\(([^)]*)\)")


def expand_macros(
    sql: str, time_range: TimeRange, interval: timedelta, *, timescaledb: bool
) -> str:
    """Grafana's backend step: strip comments, substitute the global variables, expand macros.

    ``interval`` is the query's interval (the ``$__interval`` Grafana computed for the panel).
    """
    if interval <= timedelta(0):
        raise ValueError(f"interval must be positive, got {interval!r}")
    sql = _strip_comments(sql)
    ns = _to_ns(interval)
    sql = sql.replace("$__interval_ms", str(ns // 1_000_000))
    sql = sql.replace("$__interval", _format_interval(ns))
    sql = sql.replace("$__unixEpochFrom()", str(_unix(time_range.start)))
    sql = sql.replace("$__unixEpochTo()", str(_unix(time_range.end)))

    def replace(match: re.Match[str]) -> str:
        name = match[1]
        # Pre-5.3 compatibility: "$__timeGroup(...)," means the alias was wanted. Grafana looks
        # at the first occurrence of the same text in the whole query, not at this one.
        if name == "__timeGroup":
            at = sql.find(match[0]) + len(match[0])
            if sql[at : at + 1] == ",":
                name = "__timeGroupAlias"
        args = [arg.strip(" ") for arg in match[2].split(",")]
        return _evaluate(name, args, time_range, timescaledb)

    return _MACRO_RE.sub(replace, sql)


def _whole_ms(t: datetime) -> datetime:
    return t - timedelta(microseconds=t.microsecond % 1000)


def expand(
    sql: str,
    time_range: TimeRange,
    interval: timedelta,
    *,
    timescaledb: bool,
    variables: Sequence[Variable] = (),
) -> str:
    """Both steps in Grafana's order, with what the frontend sends the backend: the time range
    and the interval in whole milliseconds."""
    ms = _interval_ms(interval)
    sent = TimeRange(_whole_ms(time_range.start), _whole_ms(time_range.end))
    return expand_macros(
        interpolate(sql, variables, interval=interval),
        sent,
        timedelta(milliseconds=ms),
        timescaledb=timescaledb,
    )
