"""Building blocks of the dashboards: data source references, variables, panels and a board that
lays them out on Grafana's 24-column grid.

Everything returns plain JSON-ready dicts in the shape of Grafana 11's dashboard model (schema
version 39), so the committed files are what Grafana itself would save.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from textwrap import dedent
from typing import Any, Literal

Json = dict[str, Any]

POSTGRES_UID = "placewatch-postgres"
PROMETHEUS_UID = "placewatch-prometheus"
POSTGRES: Json = {"type": "grafana-postgresql-datasource", "uid": POSTGRES_UID}
PROMETHEUS: Json = {"type": "prometheus", "uid": PROMETHEUS_UID}

# Council-local time for "today" and daily activity (the councils placewatch serves are in the
# UK; the scenario and care rules use the same zone).
LOCAL_TZ = "Europe/London"

SEVERITY_COLOURS = {"critical": "red", "warning": "orange", "info": "blue"}


def by_severity(column: str) -> str:
    """An ORDER BY key putting critical first, then warning, then info."""
    return f"array_position(ARRAY['critical', 'warning', 'info'], {column})"


SCHEMA_VERSION = 39
GRID_WIDTH = 24


# --- queries ---------------------------------------------------------------------------------


def sql(query: str, *, series: bool = False) -> Json:
    """A PostgreSQL target in code mode: a table, or a time series (``time`` and ``metric``
    columns, long format) when ``series``."""
    return {
        "datasource": POSTGRES,
        "editorMode": "code",
        "format": "time_series" if series else "table",
        "rawQuery": True,
        "rawSql": dedent(query).strip(),
    }


def promql(expr: str, legend: str = "__auto") -> Json:
    return {
        "datasource": PROMETHEUS,
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend,
        "range": True,
    }


# --- variables -------------------------------------------------------------------------------


def query_variable(
    name: str, label: str, query: str, *, multi: bool = True, source: Json = POSTGRES
) -> Json:
    """A variable filled by a query. Multi-value variables start on All; Grafana then passes
    every option, quoted and comma-separated, so queries use ``column IN ($name)``."""
    query = dedent(query).strip()
    current: Json = {"text": ["All"], "value": ["$__all"]} if multi else {}
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": source,
        "query": query,
        "definition": query,
        "refresh": 1,  # on dashboard load
        "multi": multi,
        "includeAll": multi,
        "sort": 1,
        "current": current,
        "options": [],
        "hide": 0,
    }


def council_variable() -> Json:
    return query_variable(
        "council",
        "Council",
        "SELECT council_id AS __value, name AS __text FROM councils ORDER BY name",
        multi=False,
    )


def device_variables(kind: str | None, name: str = "device", label: str = "Device") -> list[Json]:
    """council, ward and site, and the devices of ``kind`` (every kind when None) there."""
    kind_filter = f" AND kind = '{kind}'" if kind else ""
    return [
        council_variable(),
        query_variable(
            "ward",
            "Ward",
            f"""SELECT DISTINCT ward FROM dashboard_devices
                WHERE council_id = '$council' AND ward IS NOT NULL{kind_filter} ORDER BY 1""",
        ),
        query_variable(
            "site",
            "Site",
            f"""SELECT DISTINCT site FROM dashboard_devices
                WHERE council_id = '$council' AND ward IN ($ward){kind_filter} ORDER BY 1""",
        ),
        query_variable(
            name,
            label,
            f"""SELECT device_id FROM dashboard_devices
                WHERE council_id = '$council' AND site IN ($site){kind_filter} ORDER BY 1""",
        ),
    ]


# --- panels ----------------------------------------------------------------------------------

Thresholds = Sequence[tuple[str, float | None]]  # (colour, from value); the first from None


def thresholds_json(steps: Thresholds) -> Json:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in steps]}


def _panel(
    kind: str,
    title: str,
    targets: list[Json],
    *,
    description: str,
    unit: str | None = None,
    thresholds: Thresholds | None = None,
    custom: Json | None = None,
    options: Json | None = None,
    overrides: list[Json] | None = None,
    mappings: list[Json] | None = None,
    interval: str | None = None,
    decimals: int | None = None,
    color: Json | None = None,
    **extra: Any,
) -> Json:
    defaults: Json = {}
    if unit:
        defaults["unit"] = unit
    if decimals is not None:
        defaults["decimals"] = decimals
    if thresholds:
        defaults["thresholds"] = thresholds_json(thresholds)
    if color:
        defaults["color"] = color
    if custom:
        defaults["custom"] = custom
    if mappings:
        defaults["mappings"] = mappings
    panel: Json = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": targets[0]["datasource"],
        "targets": [dict(t, refId=chr(ord("A") + i)) for i, t in enumerate(targets)],
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": options or {},
    }
    if interval:
        panel["interval"] = interval  # the smallest $__interval: the data's own resolution
    panel.update(extra)
    return panel


def timeseries(
    title: str,
    *targets: Json,
    description: str,
    unit: str | None = None,
    thresholds: Thresholds | None = None,
    threshold_style: Literal["off", "line", "area", "line+area"] = "off",
    bars: bool = False,
    stack: bool = False,
    interval: str | None = None,
    **extra: Any,
) -> Json:
    custom: Json = {
        "drawStyle": "bars" if bars else "line",
        "lineWidth": 1,
        "fillOpacity": 60 if bars else 10,
        "spanNulls": False,
        "showPoints": "never",
        "thresholdsStyle": {"mode": threshold_style},
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
    }
    return _panel(
        "timeseries",
        title,
        list(targets),
        description=description,
        unit=unit,
        thresholds=thresholds,
        custom=custom,
        interval=interval,
        options={
            "legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        **extra,
    )


def table(title: str, target: Json, *, description: str, **extra: Any) -> Json:
    return _panel(
        "table",
        title,
        [target],
        description=description,
        options={"showHeader": True, "cellHeight": "sm", "footer": {"show": False}},
        **extra,
    )


def stat(
    title: str,
    target: Json,
    *,
    description: str,
    thresholds: Thresholds | None = None,
    unit: str | None = None,
    **extra: Any,
) -> Json:
    return _panel(
        "stat",
        title,
        [target],
        description=description,
        unit=unit,
        thresholds=thresholds or [("green", None)],
        options={
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "none",
            "textMode": "value_and_name",
            "justifyMode": "auto",
            "orientation": "auto",
        },
        **extra,
    )


def bargauge(
    title: str,
    target: Json,
    *,
    description: str,
    unit: str | None = None,
    thresholds: Thresholds | None = None,
    max_value: float | None = None,
    **extra: Any,
) -> Json:
    """One bar per row of a table query (the first text column names it)."""
    panel = _panel(
        "bargauge",
        title,
        [target],
        description=description,
        unit=unit,
        thresholds=thresholds or [("green", None)],
        options={
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": True},
            "orientation": "horizontal",
            "displayMode": "gradient",
            "showUnfilled": True,
            "valueMode": "color",
        },
        **extra,
    )
    if max_value is not None:
        panel["fieldConfig"]["defaults"]["min"] = 0
        panel["fieldConfig"]["defaults"]["max"] = max_value
    return panel


def value_colours(field_name: str, colours: dict[str, str]) -> Json:
    """An override giving each text value of a field its colour (status, severity)."""
    mapping = {
        "type": "value",
        "options": {v: {"color": c, "index": i} for i, (v, c) in enumerate(colours.items())},
    }
    return {
        "matcher": {"id": "byName", "options": field_name},
        "properties": [
            {"id": "mappings", "value": [mapping]},
            {"id": "custom.cellOptions", "value": {"type": "color-text"}},
        ],
    }


def threshold_colours(field_name: str, steps: Thresholds, cell: str | None = "color-text") -> Json:
    """An override colouring one field by its value (a table cell with ``cell``)."""
    properties: list[Json] = [{"id": "thresholds", "value": thresholds_json(steps)}]
    if cell:
        properties.insert(0, {"id": "custom.cellOptions", "value": {"type": cell}})
    return {"matcher": {"id": "byName", "options": field_name}, "properties": properties}


def geomap(title: str, target: Json, *, description: str, colour_field: str, **extra: Any) -> Json:
    """Markers at each row's ``latitude``/``longitude``, coloured by ``colour_field``."""
    layer = {
        "type": "markers",
        "name": "Devices",
        "location": {"mode": "coords", "latitude": "latitude", "longitude": "longitude"},
        "config": {
            "showLegend": True,
            "style": {
                "size": {"fixed": 6},
                "color": {"field": colour_field, "fixed": "green"},
                "opacity": 0.8,
            },
        },
        "tooltip": True,
    }
    return _panel(
        "geomap",
        title,
        [target],
        description=description,
        options={
            "view": {"id": "fit", "lat": 51.5, "lon": -0.12, "zoom": 11},
            "controls": {"showZoom": True, "mouseWheelZoom": True},
            "basemap": {"type": "default", "name": "Basemap"},
            "layers": [layer],
            "tooltip": {"mode": "details"},
        },
        **extra,
    )


# --- boards ----------------------------------------------------------------------------------


@dataclass
class Board:
    """A dashboard being built: panels flow left to right, then down, on the 24-column grid."""

    uid: str
    title: str
    description: str
    variables: list[Json]
    tags: list[str] = field(default_factory=list)
    time_from: str = "now-7d"
    refresh: str = "1m"
    panels: list[Json] = field(default_factory=list)
    _x: int = 0
    _y: int = 0
    _row_bottom: int = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(self._placed({"type": "row", "title": title, "collapsed": False}, 24, 1))
        self._newline()

    def add(self, panel: Json, width: int = 12, height: int = 8) -> None:
        if self._x + width > GRID_WIDTH:
            self._newline()
        self.panels.append(self._placed(panel, width, height))
        self._x += width
        self._row_bottom = max(self._row_bottom, self._y + height)

    def _newline(self) -> None:
        self._x, self._y = 0, max(self._y, self._row_bottom)
        self._row_bottom = self._y

    def _placed(self, panel: Json, width: int, height: int) -> Json:
        grid = {"h": height, "w": width, "x": self._x, "y": self._y}
        placed: Json = {"id": len(self.panels) + 1, "gridPos": grid}
        if panel["type"] == "row":
            self._row_bottom = self._y + height
        placed.update(panel)
        return placed

    def json(self) -> Json:
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["placewatch", *self.tags],
            "timezone": "browser",
            "editable": False,
            "graphTooltip": 1,  # shared crosshair
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "time": {"from": self.time_from, "to": "now"},
            "refresh": self.refresh,
            "templating": {"list": self.variables},
            "annotations": {"list": []},
            "links": [
                {
                    "type": "dashboards",
                    "tags": ["placewatch"],
                    "asDropdown": True,
                    "title": "placewatch",
                    "includeVars": True,
                    "keepTime": True,
                }
            ],
            "panels": self.panels,
        }
