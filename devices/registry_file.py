"""The devices file: a council's devices and network server applications, registered with
``placewatch devices import FILE`` (idempotent: devices are created or updated, never deleted).

    council: sutton
    name: London Borough of Sutton
    applications:
      - {network: ttn, application: sutton-bins@ttn, auto_register: true}
      - {network: chirpstack, application: 17c82e96-be03-4f38-aef3-f83d48582d97}
    devices:
      - id: bin-0001
        model: milesight-iot/em310-udl      # the kind follows from the model
        dev_eui: 24E124136B316582
        site: high-street
        location: [51.3618, -0.1945]
        expected_interval: 30m
        settings: {depth_mm: 1100}
      - id: r-0007-hall
        kind: home_activity                  # no model: the device sends native fields
        resident: r-0007
        settings: {sensor: motion}
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, model_validator

from devices.models import ModelCatalog, SettingValue
from placewatch.kinds import Kind
from placewatch.yamlconfig import ConfigLoadError, ConfigProblem, load_yaml
from rules.durations import parse_duration
from storage.registry import DeviceSpec, NetworkApplication

_ID = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApplicationEntry(_Strict):
    network: Literal["ttn", "chirpstack"]
    application: str = Field(min_length=1)
    auto_register: bool = False

    @model_validator(mode="after")
    def _ttn_names_tenant(self) -> Self:
        if self.network == "ttn" and "@" not in self.application:
            raise ValueError(
                "a TTN application is '<application id>@<tenant id>' as in its uplink topic "
                "(the tenant of The Things Network community edition is 'ttn')"
            )
        return self


class DeviceEntry(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
    kind: Kind | None = None
    model: str | None = None
    dev_eui: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{16}$")
    site: str | None = None
    ward: str | None = None
    location: (
        tuple[Annotated[float, Field(ge=-90, le=90)], Annotated[float, Field(ge=-180, le=180)]]
        | None
    ) = None
    resident: str | None = None
    expected_interval: Annotated[timedelta, BeforeValidator(parse_duration)] | None = None
    tags: list[str] = []
    settings: dict[str, SettingValue] = {}


class DevicesFile(_Strict):
    council: str = Field(pattern=_ID)
    name: str | None = None
    applications: list[ApplicationEntry] = []
    devices: list[DeviceEntry] = []


_ADAPTER: TypeAdapter[DevicesFile] = TypeAdapter(DevicesFile)


def load_devices_file(
    path: Path, catalog: ModelCatalog
) -> tuple[DevicesFile, list[DeviceSpec], list[NetworkApplication]]:
    """The file, its devices and applications; every problem names file, line and field."""
    problems: list[ConfigProblem] = []
    loaded = load_yaml(path, _ADAPTER, problems)
    spec = loaded.value
    if spec is None:
        raise ConfigLoadError(problems or [ConfigProblem(str(path), None, "", "file is empty")])
    devices: list[DeviceSpec] = []
    seen: set[str] = set()
    euis: dict[str, str] = {}  # dev eui → the device id that has it
    for i, d in enumerate(spec.devices):
        where = ("devices", i)
        model = catalog.get(d.model)
        kind = d.kind or (model.kind if model else None)
        problem = None
        if d.model and model is None:
            problem = ("model", f"unknown model {d.model!r}; see `placewatch models list`")
        elif kind is None:
            problem = ("kind", "give the device's kind, or a model (which implies it)")
        elif model is not None and model.kind is not kind:
            problem = ("kind", f"model {model.id} makes {model.kind.value} readings, not {kind}")
        elif d.id in seen:
            problem = ("id", f"device {d.id!r} is listed twice")
        elif d.dev_eui and d.dev_eui.lower() in euis:
            # One device per DevEUI (the registry's unique index): say so here, with the line.
            other = euis[d.dev_eui.lower()]
            problem = ("dev_eui", f"DevEUI {d.dev_eui.lower()} is listed twice (device {other!r})")
        if problem is not None or kind is None:
            field, message = problem or ("kind", "missing")
            problems.append(
                ConfigProblem(
                    str(path), loaded.line_of((*where, field)), f"devices[{i}].{field}", message
                )
            )
            continue
        seen.add(d.id)
        if d.dev_eui:
            euis[d.dev_eui.lower()] = d.id
        devices.append(
            DeviceSpec(
                council_id=spec.council,
                device_id=d.id,
                kind=kind,
                model=d.model,
                site=d.site,
                ward=d.ward,
                latitude=d.location[0] if d.location else None,
                longitude=d.location[1] if d.location else None,
                resident_id=d.resident,
                expected_interval_s=(
                    int(d.expected_interval.total_seconds()) if d.expected_interval else None
                ),
                properties=dict(d.settings),
                tags=tuple(d.tags),
                dev_eui=d.dev_eui.lower() if d.dev_eui else None,
            )
        )
    if problems:
        raise ConfigLoadError(problems)
    applications = [
        NetworkApplication(a.network, a.application, a.auto_register) for a in spec.applications
    ]
    return spec, devices, applications
