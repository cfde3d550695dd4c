"""Waiting for the rules worker's care sweep."""

from __future__ import annotations

import psycopg

# As far as a sweep can evaluate a resident: the last settled tick (at least the settle time
# ago, on the 5-minute grid), but no later than the resident's latest reading.
_CAUGHT_UP = """
    SELECT count(*) FROM rule_state s
    WHERE s.rule_id = ANY(%s) AND s.subject_type = 'resident'
      AND s.evaluated_until >= least(
            now() - interval '10 minutes',
            (SELECT date_bin('5 minutes', max(h.time), '2000-01-01 00:00+00')
             FROM home_activity h
             WHERE h.council_id = s.council_id AND h.resident_id = s.subject_id))
"""


def care_monitors_caught_up(url: str, rule_ids: list[str]) -> int:
    """How many (care rule, resident) monitors have evaluated as far as they can now."""
    with psycopg.connect(url) as conn:
        row = conn.execute(_CAUGHT_UP, (rule_ids,)).fetchone()
    assert row is not None
    return int(row[0])
