"""The data set loaders: synthetic files in each format pin the mapping rules, and the real
files (kept outside the repository, licences forbid copying them in) are checked when present."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from care.events import HomeEvent, Signal
from care.formats import FORMATS, HomeLog, load_home

REAL = Path(__file__).parents[3] / "shared/data/smart-home"


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def signals(log: HomeLog) -> Counter[Signal]:
    return Counter(e.signal for e in log.events)


def of(log: HomeLog, source: str) -> list[tuple[float, object]]:
    return [(e.at, e.value) for e in log.events if e.source == source]


def fired(start: str, end: str, on: float | bool, off: float | bool) -> list[tuple[float, object]]:
    """The two events of one firing, times given in UTC."""
    return [(utc(start), on), (utc(end), off)]


def real(name: str) -> Path:
    path = REAL / name
    if not path.exists():
        pytest.skip(f"{path} is not on this machine")
    return path


def local_day(log: HomeLog, at: float) -> date:
    return datetime.fromtimestamp(at, log.timezone).date()


# --- NEARS -------------------------------------------------------------------------------------


def nears(at: str, location: str, subject: str, sensor: str, state: object) -> str:
    return json.dumps(
        {
            "subject": subject,
            "sensor": sensor,
            "location": location,
            "sentAt": {"$date": at},
            "state": state,
            "home": "nears-hub-0042",
        }
    )


NEARS_LINES = [
    nears("2023-03-01T12:00:00.000Z", "kitchen", "kitchen", "motion", "ON"),
    nears("2023-03-01T12:00:30.000Z", "kitchen", "kitchen", "motion", "OFF"),
    # the double send: the second OPEN 20 ms later is dropped, the CLOSED is kept
    nears("2023-03-01T12:01:00.000Z", "entrance", "door", "contact", "OPEN"),
    nears("2023-03-01T12:01:00.020Z", "entrance", "door", "contact", "OPEN"),
    nears("2023-03-01T12:01:00.900Z", "entrance", "door", "contact", "CLOSED"),
    nears("2023-03-01T12:01:01.000Z", "entrance", "door", "contact", "CLOSED"),
    # the same state again after 3 s is a new message, kept
    nears("2023-03-01T12:01:04.000Z", "entrance", "door", "contact", "CLOSED"),
    nears("2023-03-01T12:02:00.000Z", "kitchen", "utensils_drawer", "contact", "OPEN"),
    nears("2023-03-01T12:02:05.000Z", "bedroom", "clothes", "contact", "ON"),
    nears("2023-03-01T12:02:09.000Z", "bedroom", "clothes", "contact", "OFF"),
    nears("2023-03-01T12:03:00.000Z", "kitchen", "coffeemaker", "instant_power", 1412.5),
    nears("2023-03-01T12:03:01.000Z", "kitchen", "coffeemaker", "instant_power", 0),
    nears("2023-03-01T12:04:00.000Z", "living", "tv", "instant_power", 118.2),
    nears("2023-03-01T12:05:00.000Z", "kitchen", "kitchen", "luminance", 40),
    nears("2023-03-01T12:05:01.000Z", "kitchen", "kitchen", "temperature", "22.5 °C"),
    nears("2023-03-01T12:05:02.000Z", "kitchen", "kitchen", "tamper_alarm", "OFF"),
    '{"subject": "kitchen", "sensor": "motion", "location": "kitchen", "state": "ON"}',
    nears("2023-03-01T12:06:00.000Z", "kitchen", "fridge", "contact", "AJAR"),
    nears("2023-03-01T12:06:00", "kitchen", "kitchen", "motion", "ON"),  # no zone
    "{not json",
    "",
]


@pytest.fixture
def nears_log(tmp_path: Path) -> HomeLog:
    path = tmp_path / "nears-0042.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(NEARS_LINES) + "\n")
    return load_home("nears", path)


def test_nears_maps_each_sensor_to_its_signal(nears_log: HomeLog) -> None:
    assert nears_log.resident == "nears-0042"
    assert nears_log.timezone.key == "America/Toronto"
    assert nears_log.heartbeat is True
    assert signals(nears_log) == {
        Signal.MOTION: 2,
        Signal.FRONT_DOOR: 3,
        Signal.CONTACT: 3,
        Signal.APPLIANCE: 2,
        Signal.REPORT: 4,
    }
    assert of(nears_log, "kitchen/kitchen/motion") == [
        (utc("2023-03-01T12:00:00"), 1),
        (utc("2023-03-01T12:00:30"), 0),
    ]
    assert of(nears_log, "kitchen/coffeemaker/instant_power") == [
        (utc("2023-03-01T12:03:00"), 1412.5),
        (utc("2023-03-01T12:03:01"), 0.0),
    ]
    assert of(nears_log, "bedroom/clothes/contact") == [
        (utc("2023-03-01T12:02:05"), True),
        (utc("2023-03-01T12:02:09"), False),
    ]
    tv = [e for e in nears_log.events if e.source == "living/tv/instant_power"]
    assert [(e.signal, e.value) for e in tv] == [(Signal.REPORT, None)]


def test_nears_drops_double_sends_and_keeps_front_door_changes(nears_log: HomeLog) -> None:
    door = [e for e in nears_log.events if e.source == "entrance/door/contact"]
    assert {e.signal for e in door} == {Signal.FRONT_DOOR}
    assert [(e.at, e.value) for e in door] == [
        (utc("2023-03-01T12:01:00"), True),
        (utc("2023-03-01T12:01:00.900"), False),
        (utc("2023-03-01T12:01:04"), False),
    ]
    assert door[0].where == "entrance door"


def test_nears_counts_what_it_skips(nears_log: HomeLog) -> None:
    # no time, an unknown contact state, a time without a zone, bad JSON (the blank line is not)
    assert nears_log.skipped == 4
    assert nears_log.start == utc("2023-03-01T12:00:00")
    assert nears_log.end == utc("2023-03-01T12:05:02")


def test_nears_names_places_for_people(nears_log: HomeLog) -> None:
    where = {e.source: e.where for e in nears_log.events}
    assert where["kitchen/kitchen/motion"] == "kitchen"
    assert where["kitchen/utensils_drawer/contact"] == "kitchen utensils drawer"
    assert where["kitchen/coffeemaker/instant_power"] == "kitchen coffeemaker"


def test_nears_reads_plain_json_lines_too(tmp_path: Path, nears_log: HomeLog) -> None:
    path = tmp_path / "nears.jsonl"
    path.write_text("\n".join(NEARS_LINES), encoding="utf-8")
    assert load_home("nears", path) == nears_log


def test_nears_refuses_two_homes_in_one_log(tmp_path: Path) -> None:
    other = NEARS_LINES[1].replace("nears-hub-0042", "nears-hub-0043")
    path = tmp_path / "mixed.jsonl"
    path.write_text(f"{NEARS_LINES[0]}\n{other}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"mixed\.jsonl:2: .*nears-hub-0043"):
        load_home("nears", path)


def test_nears_refuses_a_log_with_nothing_usable(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("{not json\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no events"):
        load_home("nears", path)


def test_nears_real_home() -> None:
    log = load_home("nears", real("nears-0104.jsonl.gz"))
    assert log.resident == "nears-0104"
    assert log.timezone.key == "America/Toronto"
    assert log.skipped == 0
    assert len(log.events) > 400_000
    assert local_day(log, log.start) == date(2023, 1, 24)
    assert local_day(log, log.end) == date(2023, 11, 1)
    counts = signals(log)
    assert counts[Signal.FRONT_DOOR] > 2_000
    assert counts[Signal.APPLIANCE] > 4_000
    assert counts[Signal.REPORT] > 200_000
    assert all(a.at <= b.at for a, b in zip(log.events, log.events[1:], strict=False))


# --- Ordóñez -----------------------------------------------------------------------------------

ORDONEZ = (
    "Start time          \tEnd time            \tLocation\tType\t\tPlace\n"
    "--------------------\t--------------------\t--------\t--------\t-----\n"
    "2011-11-28 02:27:59\t\t2011-11-28 10:18:11\t\tBed\t\t\tPressure\tBedroom\n"
    "2011-11-28 10:21:44\t\t2011-11-28 10:33:44\t\tBasin\t\tPIR\t\t\tBathroom\n"
    "2011-11-28 10:23:02 \t2011-11-28 10:23:36\t\tToilet\t\tFlush\t\tBathroom\n"
    "2011-11-28 10:34:23\t\t2011-11-28 10:34:41\t\tFridge\t\tMagnetic\tKitchen\n"
    "2011-11-28 10:38:00\t\t2011-11-28 10:42:41\t\tToaster\t\tElectric\tKitchen\t\n"
    "\n"
    "2011-11-28 11:00:00\t\t2011-11-28 11:00:05\t\tMaindoor\tMagnetic\tEntrance\n"
    "2011-11-28 12:00:00\t\t2011-11-28 12:40:00\t\tSeat\t\tPressure\tLiving\n"
)


@pytest.fixture
def ordonez_dir(tmp_path: Path) -> Path:
    (tmp_path / "OrdonezA_Sensors.txt").write_text(ORDONEZ, encoding="utf-8")
    return tmp_path


def test_ordonez_turns_rows_into_start_and_end_events(ordonez_dir: Path) -> None:
    log = load_home("ordonez", ordonez_dir)
    assert (log.resident, log.timezone.key, log.heartbeat) == ("ordonez-a", "Europe/Madrid", False)
    assert signals(log) == {
        Signal.BED: 2,
        Signal.MOTION: 4,  # start, two 5-minute repeats, end
        Signal.CONTACT: 4,  # flush and fridge
        Signal.APPLIANCE: 2,
        Signal.FRONT_DOOR: 2,
        Signal.CHAIR: 2,
    }
    # Madrid is UTC+1 in November
    assert of(log, "Basin") == [
        (utc("2011-11-28 09:21:44"), 1),
        (utc("2011-11-28 09:26:44"), 1),
        (utc("2011-11-28 09:31:44"), 1),
        (utc("2011-11-28 09:33:44"), 0),
    ]
    assert of(log, "Maindoor") == fired("2011-11-28 10:00:00", "2011-11-28 10:00:05", True, False)
    assert of(log, "Toaster") == fired("2011-11-28 09:38:00", "2011-11-28 09:42:41", 1000.0, 0.0)
    assert of(log, "Toilet") == fired("2011-11-28 09:23:02", "2011-11-28 09:23:36", True, False)
    assert {e.source: e.signal for e in log.events}["Seat"] is Signal.CHAIR
    assert {e.source: e.where for e in log.events}["Basin"] == "bathroom basin"
    assert [e.at for e in log.events] == sorted(e.at for e in log.events)
    assert (log.start, log.end) == (utc("2011-11-28 01:27:59"), utc("2011-11-28 11:40:00"))


def test_ordonez_takes_the_file_itself_and_summer_time(tmp_path: Path) -> None:
    path = tmp_path / "OrdonezA_Sensors.txt"
    path.write_text(ORDONEZ.replace("2011-11-28", "2011-07-01"), encoding="utf-8")
    log = load_home("ordonez", path)
    assert log.start == utc("2011-07-01 00:27:59")  # UTC+2 in July


def test_ordonez_errors_name_file_and_line(tmp_path: Path, ordonez_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"elsewhere: not found \(give Ordonez"):
        load_home("ordonez", tmp_path / "elsewhere")
    sensors = ordonez_dir / "OrdonezA_Sensors.txt"
    sensors.write_text(ORDONEZ + "2011-11-28 13:00:00\t2011-11-28 13:01:00\tSofa\tSonar\tLiving\n")
    with pytest.raises(ValueError, match=r"OrdonezA_Sensors\.txt:11: unknown sensor type 'Sonar'"):
        load_home("ordonez", ordonez_dir)
    sensors.write_text(ORDONEZ + "2011-11-28 13:00:00\t2011-11-28\tSeat\tPressure\tLiving\n")
    with pytest.raises(ValueError, match=r":11: .*does not match format"):
        load_home("ordonez", ordonez_dir)


def test_ordonez_real_house() -> None:
    log = load_home("ordonez", real("OrdonezA_Sensors.txt").parent)
    assert (log.resident, log.timezone.key) == ("ordonez-a", "Europe/Madrid")
    assert len(log.events) > 800  # 408 rows, two events each, plus PIR repeats
    assert local_day(log, log.start) == date(2011, 11, 28)
    assert local_day(log, log.end) == date(2011, 12, 12)
    assert signals(log)[Signal.FRONT_DOOR] == 62


# --- van Kasteren ------------------------------------------------------------------------------

KASTEREN = (
    "Start time: Time sensor started firing\r\n"
    "ID: sensor id (see list below)\r\n"
    "\r\n"
    "Sensor IDs are: \r\n"
    "    [ 1]    'Microwave'         \r\n"
    "    [ 5]    'Hall-Toilet door'  \r\n"
    "    [12]    'Frontdoor'         \r\n"
    "    [14]    'ToiletFlush'       \r\n"
    "\r\n"
    "Start time          \tEnd time            \tID\tVal\r\n"
    "--------------------\t--------------------\t--\t---\r\n"
    "25-Feb-2008 09:33:41\t25-Feb-2008 09:33:42\t12\t1\r\n"
    "25-Feb-2008 09:49:58\t25-Feb-2008 09:50:04\t1\t1\r\n"
    "25-Feb-2008 09:36:43\t25-Feb-2008 09:37:04\t5\t1\r\n"
    "25-Feb-2008 09:37:51\t25-Feb-2008 09:37:52\t14\t1\r\n"
    "Length: 4"
)


def test_kasteren_reads_the_id_table_and_maps_names(tmp_path: Path) -> None:
    path = tmp_path / "kasteren-a-sense.txt"
    path.write_bytes(KASTEREN.encode())
    log = load_home("kasteren", path)
    assert (log.resident, log.timezone.key, log.heartbeat) == (
        "kasteren-a",
        "Europe/Amsterdam",
        False,
    )
    assert signals(log) == {Signal.FRONT_DOOR: 2, Signal.APPLIANCE: 2, Signal.CONTACT: 4}
    # Amsterdam is UTC+1 in February
    assert of(log, "Frontdoor") == fired("2008-02-25 08:33:41", "2008-02-25 08:33:42", True, False)
    assert of(log, "Microwave") == fired("2008-02-25 08:49:58", "2008-02-25 08:50:04", 1000.0, 0.0)
    # the file's rows are out of order; the events are not
    assert log.events[2] == HomeEvent(
        utc("2008-02-25 08:36:43"), "Hall-Toilet door", Signal.CONTACT, True, "hall-toilet door"
    )
    assert log.end == utc("2008-02-25 08:50:04")


def test_kasteren_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "sense.txt"
    unknown_id = "25-Feb-2008 10:00:00\t25-Feb-2008 10:00:01\t7\t1"
    path.write_text(KASTEREN.replace("Length: 4", unknown_id))
    with pytest.raises(ValueError, match=r"sense\.txt:16: sensor id 7 is not in the header"):
        load_home("kasteren", path)
    path.write_text(KASTEREN.replace("Length: 4", "Length: 5"))
    with pytest.raises(ValueError, match="Length: 5 but has 4 rows"):
        load_home("kasteren", path)
    path.write_text(KASTEREN.replace("25-Feb-2008 09:33:41", "25-Fbr-2008 09:33:41"))
    with pytest.raises(ValueError, match=r":12: bad time '25-Fbr-2008 09:33:41'"):
        load_home("kasteren", path)
    with pytest.raises(FileNotFoundError, match=r"missing\.txt"):
        load_home("kasteren", tmp_path / "missing.txt")


def test_kasteren_real_house() -> None:
    log = load_home("kasteren", real("kasteren-a-sense.txt"))
    assert (log.resident, log.timezone.key) == ("kasteren-a", "Europe/Amsterdam")
    assert len(log.events) == 2 * 1319  # the file's own "Length: 1319"
    assert local_day(log, log.start) == date(2008, 2, 25)
    assert local_day(log, log.end) == date(2008, 3, 23)
    assert signals(log)[Signal.FRONT_DOOR] == 200


# --- choosing a format -------------------------------------------------------------------------


def test_load_home_names_the_known_formats_when_asked_for_another() -> None:
    assert set(FORMATS) == {"nears", "ordonez", "kasteren"}
    with pytest.raises(ValueError, match="'casas'; known: kasteren, nears, ordonez"):
        load_home("casas", "whatever")
