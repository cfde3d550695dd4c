"""Reading residents' alerts at the command line is audited like reading them through the API."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg


def _alert(conn: psycopg.Connection[tuple[object, ...]], resident: str | None) -> None:
    conn.execute(
        """INSERT INTO alerts (council_id, rule_id, rule_kind, subject_type, subject_id,
                               sensor_kind, resident_id, severity, opened_at, summary)
           VALUES ('cli', 'r', 'threshold', 'device', 'd', 'home_activity', %s, 'warning',
                   now(), 's')""",
        (resident,),
    )


def test_alerts_list_audits_care_data(fresh_database: str) -> None:
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("INSERT INTO councils VALUES ('cli', 'CLI council')")
        _alert(conn, None)

        def list_alerts() -> str:
            env = {**os.environ, "PLACEWATCH_DATABASE_URL": fresh_database}
            return subprocess.run(
                [sys.executable, "-m", "placewatch", "alerts", "list"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout

        assert "1 alerts" in list_alerts()
        # Street alerts only: nothing about a resident was read.
        assert conn.execute("SELECT count(*) FROM access_audit").fetchone() == (0,)
        conn.execute("UPDATE alerts SET state = 'resolved'")
        _alert(conn, "r-0042")
        assert "1 alerts" in list_alerts()
        row = conn.execute(
            "SELECT team_id, principal, action, resident_ids FROM access_audit"
        ).fetchall()
        assert len(row) == 1
        team, principal, action, residents = row[0]
        assert team is None and str(principal).startswith("cli:")
        assert action == "cli.alerts.list" and residents == ["r-0042"]
