"""Who sees what: the SQL functions placewatch_team_sees_alert and placewatch_team_sees_device,
on teams applied from a teams file. A route's conditions must all hold (AND), any one route
suffices (OR); a route without resident_group sees only street alerts, '*' every resident's, a
group only its members'; and a team never sees another council's alerts."""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from teams.config import apply_teams, load_teams_file

A_FILE = """
council: COUNCIL
resident_groups:
  north: [r-1, r-2]
  south: [r-3]
teams:
  - {id: street-TAG, name: Street, routes: [{}]}
  - {id: all-res-TAG, name: Every resident, routes: [{residents: '*'}]}
  - {id: north-TAG, name: North carers, routes: [{residents: north}]}
  - {id: warn-TAG, name: Warnings up, routes: [{min_severity: warning}]}
  - {id: crit-TAG, name: Critical only, routes: [{min_severity: critical}]}
  - id: narrow-TAG
    name: High street bins, one rule
    routes:
      - {sites: [high-st], kinds: [bin_fill], rules: [bin-full]}
  - id: multi-TAG
    name: River, and falls in the south caseload
    routes:
      - {sites: [riverside], kinds: [flood_level]}
      - {rules: [fall-detected], residents: south, min_severity: warning}
"""

B_FILE = """
council: COUNCIL
resident_groups:
  north: [r-9]
teams:
  - {id: b-street-TAG, name: Their street, routes: [{}]}
  - {id: b-north-TAG, name: Their north carers, routes: [{residents: north}]}
"""


@dataclass(frozen=True)
class World:
    conn: psycopg.Connection[tuple[object, ...]]
    tag: str
    councils: dict[str, str]

    def sees_alert(
        self,
        team: str,
        council: str,
        site: str | None,
        kind: str | None,
        severity: str,
        rule: str,
        resident: str | None,
    ) -> object:
        row = self.conn.execute(
            "SELECT placewatch_team_sees_alert(%s, %s, %s, %s, %s, %s, %s)",
            (f"{team}-{self.tag}", self.councils[council], site, kind, severity, rule, resident),
        ).fetchone()
        assert row is not None
        return row[0]

    def sees_device(
        self, team: str, council: str, site: str | None, kind: str | None, resident: str | None
    ) -> object:
        row = self.conn.execute(
            "SELECT placewatch_team_sees_device(%s, %s, %s, %s, %s)",
            (f"{team}-{self.tag}", self.councils[council], site, kind, resident),
        ).fetchone()
        assert row is not None
        return row[0]


@pytest.fixture(scope="module")
def world(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tag = uuid.uuid4().hex[:8]
    councils = {"A": f"va{tag}", "B": f"vb{tag}"}
    tmp = tmp_path_factory.mktemp("visibility")
    with psycopg.connect(database_url, autocommit=True) as conn:
        for key, text in (("A", A_FILE), ("B", B_FILE)):
            council = councils[key]
            conn.execute("INSERT INTO councils (council_id, name) VALUES (%s, %s)", (council, key))
            path = tmp / f"{key}.yaml"
            body = textwrap.dedent(text).replace("COUNCIL", council).replace("TAG", tag)
            path.write_text(body, encoding="utf-8")
            apply_teams(conn, load_teams_file(path))
        yield World(conn, tag, councils)


STREET_BIN = ("high-st", "bin_fill")
HOME = ("flat-12", "home_activity")

# (team, council, site, kind, severity, rule, resident) -> sees the alert?
ALERT_CASES = [
    # No resident_group: street alerts only.
    pytest.param("street", "A", *STREET_BIN, "info", "bin-full", None, True, id="street-any"),
    pytest.param("street", "A", None, None, "info", "x", None, True, id="street-no-site-kind"),
    pytest.param("street", "A", *HOME, "critical", "fall", "r-1", False, id="street-resident"),
    pytest.param("street", "A", *HOME, "critical", "fall", "r-77", False, id="street-stranger"),
    # '*': every resident's alerts, no street ones.
    pytest.param("all-res", "A", *HOME, "info", "fall", "r-1", True, id="star-member"),
    pytest.param("all-res", "A", *HOME, "info", "fall", "r-77", True, id="star-anyone"),
    pytest.param("all-res", "A", *STREET_BIN, "critical", "x", None, False, id="star-street"),
    # A named group: its members only, in its own council.
    pytest.param("north", "A", *HOME, "info", "fall", "r-1", True, id="group-member"),
    pytest.param("north", "A", *HOME, "info", "fall", "r-2", True, id="group-member-2"),
    pytest.param("north", "A", *HOME, "info", "fall", "r-3", False, id="group-other-group"),
    pytest.param("north", "A", *HOME, "info", "fall", "r-9", False, id="group-other-council"),
    pytest.param("north", "A", *STREET_BIN, "critical", "x", None, False, id="group-street"),
    # min_severity: info < warning < critical.
    pytest.param("warn", "A", *STREET_BIN, "info", "x", None, False, id="warning-info"),
    pytest.param("warn", "A", *STREET_BIN, "warning", "x", None, True, id="warning-warning"),
    pytest.param("warn", "A", *STREET_BIN, "critical", "x", None, True, id="warning-critical"),
    pytest.param("warn", "A", *STREET_BIN, "urgent", "x", None, False, id="warning-unknown"),
    pytest.param("warn", "A", *HOME, "critical", "x", "r-1", False, id="warning-resident"),
    pytest.param("crit", "A", *STREET_BIN, "warning", "x", None, False, id="critical-warning"),
    pytest.param("crit", "A", *STREET_BIN, "critical", "x", None, True, id="critical-critical"),
    # Sites, kinds and rules: each must hold.
    pytest.param("narrow", "A", *STREET_BIN, "info", "bin-full", None, True, id="lists-all"),
    pytest.param(
        "narrow", "A", "market-sq", "bin_fill", "info", "bin-full", None, False, id="lists-site"
    ),
    pytest.param(
        "narrow", "A", None, "bin_fill", "info", "bin-full", None, False, id="lists-no-site"
    ),
    pytest.param(
        "narrow", "A", "high-st", "air_quality", "info", "bin-full", None, False, id="lists-kind"
    ),
    pytest.param("narrow", "A", *STREET_BIN, "info", "bin-fire", None, False, id="lists-rule"),
    # Two routes: either will do, but all of one route's conditions must hold.
    pytest.param(
        "multi", "A", "riverside", "flood_level", "info", "x", None, True, id="or-first-route"
    ),
    pytest.param(
        "multi", "A", *HOME, "warning", "fall-detected", "r-3", True, id="or-second-route"
    ),
    pytest.param(
        "multi",
        "A",
        "riverside",
        "flood_level",
        "info",
        "river-rising",
        "r-3",
        False,
        id="or-neither-route",
    ),
    pytest.param(
        "multi", "A", "riverside", "bin_fill", "info", "x", None, False, id="and-first-kind"
    ),
    pytest.param(
        "multi", "A", *HOME, "info", "fall-detected", "r-3", False, id="and-second-severity"
    ),
    pytest.param(
        "multi", "A", *HOME, "critical", "fall-detected", "r-1", False, id="and-second-group"
    ),
    # Councils: a team sees nothing of another council's, however open its routes.
    pytest.param("b-street", "B", *STREET_BIN, "info", "x", None, True, id="b-own-council"),
    pytest.param("b-street", "A", *STREET_BIN, "info", "x", None, False, id="b-other-council"),
    pytest.param("street", "B", *STREET_BIN, "info", "x", None, False, id="a-other-council"),
    pytest.param("b-north", "B", *HOME, "info", "fall", "r-9", True, id="b-group-member"),
    pytest.param("b-north", "B", *HOME, "info", "fall", "r-1", False, id="b-group-a-member"),
    pytest.param("north", "B", *HOME, "info", "fall", "r-9", False, id="a-group-b-council"),
    pytest.param("nobody", "A", *STREET_BIN, "info", "x", None, False, id="unknown-team"),
]


@pytest.mark.parametrize(
    ("team", "council", "site", "kind", "severity", "rule", "resident", "expected"), ALERT_CASES
)
def test_team_sees_alert(
    world: World,
    team: str,
    council: str,
    site: str | None,
    kind: str | None,
    severity: str,
    rule: str,
    resident: str | None,
    expected: bool,
) -> None:
    assert world.sees_alert(team, council, site, kind, severity, rule, resident) is expected


# (team, council, site, kind, resident) -> sees the device?
DEVICE_CASES = [
    pytest.param("street", "A", *STREET_BIN, None, True, id="street"),
    pytest.param("street", "A", *HOME, "r-1", False, id="street-resident"),
    pytest.param("all-res", "A", *HOME, "r-77", True, id="star-resident"),
    pytest.param("all-res", "A", *STREET_BIN, None, False, id="star-street"),
    pytest.param("north", "A", *HOME, "r-2", True, id="group-member"),
    pytest.param("north", "A", *HOME, "r-3", False, id="group-non-member"),
    # Rule and severity are alert conditions: devices ignore them.
    pytest.param("crit", "A", *STREET_BIN, None, True, id="severity-ignored"),
    pytest.param("narrow", "A", *STREET_BIN, None, True, id="rule-ignored"),
    pytest.param("narrow", "A", "high-st", "flood_level", None, False, id="kind"),
    pytest.param("narrow", "A", "market-sq", "bin_fill", None, False, id="site"),
    pytest.param("multi", "A", "riverside", "flood_level", None, True, id="or-first-route"),
    pytest.param("multi", "A", *HOME, "r-3", True, id="or-second-route"),
    pytest.param("multi", "A", *HOME, "r-1", False, id="or-neither-route"),
    pytest.param("b-street", "A", *STREET_BIN, None, False, id="other-council"),
    pytest.param("b-north", "B", *HOME, "r-9", True, id="b-group-member"),
]


@pytest.mark.parametrize(("team", "council", "site", "kind", "resident", "expected"), DEVICE_CASES)
def test_team_sees_device(
    world: World,
    team: str,
    council: str,
    site: str | None,
    kind: str | None,
    resident: str | None,
    expected: bool,
) -> None:
    assert world.sees_device(team, council, site, kind, resident) is expected


def test_visibility_follows_group_members_as_last_applied(
    conn: psycopg.Connection[tuple[object, ...]], tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    council, team = f"vg{tag}", f"g-{tag}"
    conn.execute("INSERT INTO councils (council_id, name) VALUES (%s, 'Groups')", (council,))

    def apply(members: str) -> None:
        path = tmp_path / f"{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(
            f"council: {council}\nresident_groups:\n  g: [{members}]\n"
            f"teams:\n  - {{id: {team}, name: G, routes: [{{residents: g}}]}}\n"
        )
        apply_teams(conn, load_teams_file(path))

    def sees(resident: str) -> object:
        row = conn.execute(
            "SELECT placewatch_team_sees_alert(%s, %s, 'flat-1', 'home_activity', 'info',"
            " 'fall', %s)",
            (team, council, resident),
        ).fetchone()
        assert row is not None
        return row[0]

    apply("r-1, r-2")
    assert (sees("r-1"), sees("r-2")) == (True, True)
    apply("r-1")
    assert (sees("r-1"), sees("r-2")) == (True, False)
