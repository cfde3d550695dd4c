"""Scenario files: load one (a path, or the name of a built-in one such as ``borough``), check it
with errors that name file, line and field, and expand it into the devices it describes.

``placewatch devices import FILE`` and ``placewatch simulate --scenario`` both use this:

    scenario = load_scenario("borough")
    register(conn, scenario.council_id, scenario.council_name, scenario.devices(),
             scenario.applications())
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter

from placewatch.kinds import Kind
from placewatch.yamlconfig import ConfigLoadError, ConfigProblem, LoadedYaml, load_yaml, locate
from simulators import spec as s
from simulators.identity import dev_eui, rng
from simulators.vendors import MODELS, NATIVE_MODEL, VendorModel
from storage.registry import DeviceSpec, NetworkApplication

_ADAPTER = TypeAdapter(s.ScenarioFile)
_BUILTIN = "scenarios"
_KIND_PREFIX = {
    Kind.BIN_FILL: ("bin", 4),
    Kind.AIR_QUALITY: ("aq", 2),
    Kind.FLOOD_LEVEL: ("gauge", 2),
}
StreetGroup = s.BinGroup | s.AirGroup | s.GaugeGroup
NetworkRef = s.TtnNetwork | s.ChirpStackNetwork | str  # or "native" / "senml"


def is_scenario(doc: Any) -> bool:
    """Whether a parsed YAML document is a scenario: a top-level ``scenario:`` mapping with a
    name (device import files of other shapes are not)."""
    info = doc.get("scenario") if isinstance(doc, dict) else None
    return isinstance(info, dict) and bool(info.get("name"))


def builtin_scenarios() -> list[str]:
    folder = resources.files("simulators") / _BUILTIN
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def scenario_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.exists():
        return path
    if re.fullmatch(r"[a-z0-9_-]+", name_or_path):
        builtin = resources.files("simulators") / _BUILTIN / f"{name_or_path}.yaml"
        if builtin.is_file():
            return Path(str(builtin))
    known = ", ".join(builtin_scenarios())
    raise ConfigLoadError(
        [ConfigProblem(name_or_path, None, "", f"no such file and no built-in scenario ({known})")]
    )


def load_scenario(name_or_path: str) -> Scenario:
    path = scenario_path(name_or_path)
    problems: list[ConfigProblem] = []
    loaded = load_yaml(path, _ADAPTER, problems, synthetic=(*s.EVENT_KINDS, *s.NETWORK_KINDS))
    if problems:
        raise ConfigLoadError(problems)
    if loaded.value is None:
        raise ConfigLoadError([ConfigProblem(str(path), None, "", "the file is empty")])
    scenario = Scenario(loaded.value, str(path))
    problems = _Checker(scenario, loaded, str(path)).run()
    if problems:
        raise ConfigLoadError(problems)
    return scenario


# -- expansion ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimDevice:
    """A device as the simulator drives it: its registry entry and what it imitates."""

    spec: DeviceSpec
    group: StreetGroup | s.HomeGroup
    network: NetworkRef
    model: VendorModel | None
    index: int  # position in its group (a bin's place on its collection round)
    group_size: int
    every_s: float
    sensor: s.HomeSensor | None = None

    @property
    def device_id(self) -> str:
        return self.spec.device_id

    @property
    def kind(self) -> Kind:
        return self.spec.kind


@dataclass(frozen=True)
class Resident:
    resident_id: str
    home_id: str
    group: s.HomeGroup
    routine: s.Routine
    devices: tuple[SimDevice, ...] = field(default=())


@dataclass
class Scenario:
    spec: s.ScenarioFile
    source: str

    @property
    def name(self) -> str:
        return self.spec.scenario.name

    @property
    def council_id(self) -> str:
        return self.spec.council.id

    @property
    def council_name(self) -> str:
        return self.spec.council.name

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.spec.scenario.timezone)

    def devices(self) -> list[DeviceSpec]:
        return [d.spec for d in self.sim_devices]

    def applications(self) -> list[NetworkApplication]:
        return [network_application(n) for n in self.spec.networks]

    def network(self, ref: str) -> NetworkRef:
        return next((n for n in self.spec.networks if n.id == ref), ref)

    @cached_property
    def sites(self) -> dict[str, s.Site]:
        return {site.id: site for site in self.spec.sites}

    @cached_property
    def sim_devices(self) -> list[SimDevice]:
        return [*self._street_devices(), *(d for r in self.residents.values() for d in r.devices)]

    @cached_property
    def residents(self) -> dict[str, Resident]:
        out: dict[str, Resident] = {}
        n = 0
        total = sum(g.count for g in self.spec.homes)
        width = max(2, len(str(total)))
        for group in self.spec.homes:
            for i in range(group.count):
                n += 1
                resident_id = f"{group.resident_prefix}-{n:04d}"
                home_id = f"{group.id_prefix}-{n:0{width}d}"
                override = group.residents.get(resident_id)
                routine = override.apply(group.routine) if override else group.routine
                devices = tuple(
                    self._home_device(group, i, home_id, resident_id, sensor, spec_)
                    for sensor, spec_ in group.sensors.items()
                )
                out[resident_id] = Resident(resident_id, home_id, group, routine, devices)
        return out

    def by_id(self) -> dict[str, SimDevice]:
        return {d.device_id: d for d in self.sim_devices}

    def street_groups(self) -> Iterator[tuple[Kind, StreetGroup]]:
        for kind, groups in (
            (Kind.BIN_FILL, self.spec.bins),
            (Kind.AIR_QUALITY, self.spec.air_quality),
            (Kind.FLOOD_LEVEL, self.spec.gauges),
        ):
            for group in groups:
                yield kind, group

    def _street_devices(self) -> Iterator[SimDevice]:
        totals: dict[str, int] = {}
        for kind, group in self.street_groups():
            prefix = group.id_prefix or _KIND_PREFIX[kind][0]
            totals[prefix] = totals.get(prefix, 0) + group.count
        counters: dict[str, int] = {}
        for kind, group in self.street_groups():
            prefix, width = group.id_prefix or _KIND_PREFIX[kind][0], _KIND_PREFIX[kind][1]
            width = max(width, len(str(totals[prefix])))
            for i in range(group.count):
                counters[prefix] = counters.get(prefix, 0) + 1
                device_id = f"{prefix}-{counters[prefix]:0{width}d}"
                yield self._street_device(kind, group, i, device_id)

    def _street_device(self, kind: Kind, group: StreetGroup, i: int, device_id: str) -> SimDevice:
        site = self.sites[group.sites[i % len(group.sites)]]
        layout = rng(self.council_id, device_id, "layout")
        model = MODELS.get(group.model or "")
        props: dict[str, Any] = {}
        if isinstance(group, s.BinGroup):
            props = {
                "depth_mm": round(draw(layout, group.depth_mm)),
                "blind_zone_mm": round(draw(layout, group.blind_zone_mm)),
            }
        elif isinstance(group, s.AirGroup):
            props = {"station_type": group.station_type}
        elif isinstance(group, s.GaugeGroup):
            low = draw(layout, group.typical_low_m)
            high = low + draw(layout, group.typical_span_m)
            props = {
                "typical_low_m": round(low, 2),
                "typical_high_m": round(high, 2),
                "alert_level_m": round(high + draw(layout, group.alert_margin_m), 2),
            }
            if model is not None and model.model_id == "milesight-iot/em500-swl":
                props["sensor_datum_m"] = round(low - draw(layout, group.sensor_below_low_m), 2)
        lat, lon = scatter(layout, site)
        spec = DeviceSpec(
            council_id=self.council_id,
            device_id=device_id,
            kind=kind,
            model=group.model or NATIVE_MODEL,
            site=site.id,
            ward=site.ward,
            latitude=lat,
            longitude=lon,
            expected_interval_s=round(group.every.total_seconds()),
            properties=props,
            tags=_tags(site.type, group.tags),
            dev_eui=dev_eui(self.council_id, device_id),
        )
        every = group.every.total_seconds()
        return SimDevice(spec, group, self.network(group.network), model, i, group.count, every)

    def _home_device(
        self,
        group: s.HomeGroup,
        i: int,
        home_id: str,
        resident_id: str,
        sensor: s.HomeSensor,
        sensor_spec: s.SensorSpec,
    ) -> SimDevice:
        site = self.sites[group.sites[i % len(group.sites)]]
        device_id = f"{home_id}-{sensor}"
        # Every sensor of a home shares the home's position.
        lat, lon = scatter(rng(self.council_id, home_id, "layout"), site)
        props: dict[str, Any] = {"sensor": sensor, "room": _ROOMS[sensor]}
        if sensor == "power":
            props["appliance"] = "kettle"
        every = sensor_spec.every.total_seconds()
        spec = DeviceSpec(
            council_id=self.council_id,
            device_id=device_id,
            kind=Kind.HOME_ACTIVITY,
            model=sensor_spec.model or NATIVE_MODEL,
            site=site.id,
            ward=site.ward,
            latitude=lat,
            longitude=lon,
            resident_id=resident_id,
            expected_interval_s=round(every),
            properties=props,
            tags=_tags(site.type, group.tags),
            dev_eui=dev_eui(self.council_id, device_id),
        )
        network = self.network(sensor_spec.network or group.network)
        model = MODELS.get(sensor_spec.model or "")
        return SimDevice(spec, group, network, model, i, group.count, every, sensor)


_ROOMS = {"motion": "hall", "door": "front-door", "power": "kitchen", "bed": "bedroom"}
_ROOMS["chair"] = "living-room"


def network_application(network: s.TtnNetwork | s.ChirpStackNetwork) -> NetworkApplication:
    if isinstance(network, s.TtnNetwork):
        return NetworkApplication("ttn", f"{network.application}@{network.tenant}")
    return NetworkApplication("chirpstack", str(network.application_id))


def draw(r: random.Random, bounds: tuple[float, float]) -> float:
    return r.uniform(*bounds)


def scatter(r: random.Random, site: s.Site) -> tuple[float, float]:
    """A point uniformly within the site's radius (metres to degrees at the site's latitude)."""
    dist = site.radius_m * math.sqrt(r.random())
    angle = r.uniform(0, 2 * math.pi)
    lat = site.lat + dist * math.cos(angle) / 111_320
    lon = site.lon + dist * math.sin(angle) / (111_320 * math.cos(math.radians(site.lat)))
    return round(lat, 6), round(lon, 6)


def _tags(site_type: str, tags: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys((site_type, *tags)))


# -- checks that span the file --------------------------------------------------------------------


class _Checker:
    """References between parts of the file (sites, wards, networks, models, residents,
    devices), each problem reported at its line."""

    def __init__(self, scenario: Scenario, loaded: LoadedYaml[s.ScenarioFile], path: str) -> None:
        self.scenario = scenario
        self.spec = scenario.spec
        self.loaded = loaded
        self.path = path
        self.problems: list[ConfigProblem] = []

    def problem(self, loc: tuple[str | int, ...], message: str) -> None:
        field_name = locate(self.loaded.doc, loc, ())[0]
        self.problems.append(
            ConfigProblem(self.path, self.loaded.line_of(loc), field_name, message)
        )

    def run(self) -> list[ConfigProblem]:
        self.unique_ids()
        wards = {w.id for w in self.spec.wards}
        for i, site in enumerate(self.spec.sites):
            if site.ward not in wards:
                self.problem(("sites", i, "ward"), f"no ward {site.ward!r} under wards")
        networks = {n.id for n in self.spec.networks}
        seen: Counter[str] = Counter()
        for kind, group in self.scenario.street_groups():
            key = _GROUP_KEYS[kind]
            i = seen[key]
            seen[key] += 1
            self.group_refs(key, i, group.sites, group.network, networks)
            self.model(key, i, ("model",), group.model, kind)
            self.street_group(key, i, group)
        for i, home in enumerate(self.spec.homes):
            self.group_refs("homes", i, home.sites, home.network, networks)
            for sensor, sensor_spec in home.sensors.items():
                loc = ("sensors", sensor)
                if sensor_spec.network is not None:
                    self.network_ref(("homes", i, *loc, "network"), sensor_spec.network, networks)
                self.model("homes", i, (*loc, "model"), sensor_spec.model, Kind.HOME_ACTIVITY)
                if sensor_spec.model == "elsys/ers" and sensor != "motion":
                    self.problem(("homes", i, *loc, "model"), "elsys/ers is a motion sensor")
        if self.problems:  # expansion below needs sound references
            return self.problems
        self.group_residents()
        self.events()
        return self.problems

    def unique_ids(self) -> None:
        for key, items in (
            ("wards", self.spec.wards),
            ("sites", self.spec.sites),
            ("networks", self.spec.networks),
        ):
            seen: dict[str, int] = {}
            for i, item in enumerate(items):
                if item.id in seen:
                    self.problem(
                        (key, i, "id"), f"{item.id!r} is already used by {key}[{seen[item.id]}]"
                    )
                seen.setdefault(item.id, i)
        seen_groups: dict[str, str] = {}
        for key in ("bins", "air_quality", "gauges", "homes"):
            for i, group in enumerate(getattr(self.spec, key)):
                if group.group in seen_groups:
                    where = seen_groups[group.group]
                    self.problem(
                        (key, i, "group"), f"group {group.group!r} is already used by {where}"
                    )
                seen_groups.setdefault(group.group, f"{key}[{i}]")

    def network_ref(self, loc: tuple[str | int, ...], ref: str, networks: set[str]) -> None:
        if ref not in networks and ref not in s.DIRECT_NETWORKS:
            choices = ", ".join([*s.DIRECT_NETWORKS, *sorted(networks)])
            self.problem(loc, f"unknown network {ref!r} (one of {choices})")

    def group_refs(
        self, key: str, i: int, sites: list[str], network: str, networks: set[str]
    ) -> None:
        for j, site in enumerate(sites):
            if site not in self.scenario.sites:
                self.problem((key, i, "sites", j), f"no site {site!r} under sites")
        self.network_ref((key, i, "network"), network, networks)

    def model(self, key: str, i: int, loc: tuple[str, ...], model: str | None, kind: Kind) -> None:
        if model is None or model == NATIVE_MODEL:
            return
        known = MODELS.get(model)
        if known is None:
            choices = ", ".join([NATIVE_MODEL, *MODELS])
            self.problem((key, i, *loc), f"unknown model {model!r} (built in: {choices})")
        elif known.kind is not kind:
            self.problem((key, i, *loc), f"{model} is a {known.kind.value} device")

    def street_group(self, key: str, i: int, group: StreetGroup) -> None:
        if isinstance(group, s.BinGroup) and group.temperature and group.model:
            self.problem((key, i, "temperature"), f"{group.model} reports no temperature")
        if (
            isinstance(group, s.AirGroup)
            and group.model == "decentlab/dl-pm"
            and sorted(group.pollutants) != ["pm10", "pm25"]
        ):
            self.problem(
                (key, i, "pollutants"),
                "decentlab/dl-pm measures PM only: pollutants [pm25, pm10] (NO2/O3 stations "
                "send native fields)",
            )

    def group_residents(self) -> None:
        residents = self.scenario.residents
        for i, home in enumerate(self.spec.homes):
            own = {r.resident_id for r in residents.values() if r.group is home}
            for resident in home.residents:
                if resident not in own:
                    self.problem(
                        ("homes", i, "residents", resident),
                        f"{resident!r} is not a resident of group {home.group}"
                        f" ({min(own)} to {max(own)})",
                    )

    def events(self) -> None:
        residents = self.scenario.residents
        devices = self.scenario.by_id()
        for i, event in enumerate(self.spec.events):
            resident = getattr(event, "resident", None)
            if resident is not None and resident not in residents:
                self.problem(("events", i, "resident"), f"no resident {resident!r}")
            device_id = getattr(event, "device", None)
            if device_id is None:
                continue
            device = devices.get(device_id)
            want = _EVENT_DEVICE_KIND.get(event.kind)
            if device is None:
                self.problem(("events", i, "device"), f"no device {device_id!r}")
            elif want is not None and device.kind is not want:
                self.problem(
                    ("events", i, "device"),
                    f"{event.kind} needs a {want.value} device, {device_id} is {device.kind.value}",
                )
            elif (
                isinstance(event, s.BinFire)
                and isinstance(device.group, s.BinGroup)
                and not device.group.temperature
            ):
                self.problem(
                    ("events", i, "device"),
                    f"{device_id} reports no temperature (its group has temperature: false)",
                )


_GROUP_KEYS = {Kind.BIN_FILL: "bins", Kind.AIR_QUALITY: "air_quality", Kind.FLOOD_LEVEL: "gauges"}
_EVENT_DEVICE_KIND = {
    "bin_fire": Kind.BIN_FILL,
    "bin_knocked_over": Kind.BIN_FILL,
    "gauge_stuck": Kind.FLOOD_LEVEL,
}
