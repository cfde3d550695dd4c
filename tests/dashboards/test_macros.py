"""Grafana's SQL expansion for PostgreSQL panels (dashboards/macros.py).

Expected strings marked "macros_test.go" are copied from Grafana's
pkg/tsdb/grafana-postgresql-datasource/macros_test.go (TestMacroEngine, TestStripSQLComments),
"truth table" from the PostgreSQL data source's interpolationTruthTable.test.ts and
"formatRegistry" from @grafana/scenes' formatRegistry.test.ts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

from dashboards import macros
from dashboards.macros import (
    MacroError,
    TimeRange,
    Variable,
    expand,
    expand_macros,
    interpolate,
)
from tests.support.postgres import ADMIN_URL

FROM = datetime(2018, 4, 12, 18, 0, tzinfo=UTC)
TO = FROM + timedelta(minutes=5)
RANGE = TimeRange(FROM, TO)
FILTER = "BETWEEN '2018-04-12T18:00:00Z' AND '2018-04-12T18:05:00Z'"
TEN_MINUTES = timedelta(minutes=10)


def backend(sql: str, *, timescaledb: bool = False, time_range: TimeRange = RANGE) -> str:
    return expand_macros(sql, time_range, TEN_MINUTES, timescaledb=timescaledb)


# --- backend macros ------------------------------------------------------------------------------

# macros_test.go, "Given a time range between 2018-04-12 00:00 and 2018-04-12 00:05"; none of
# these depends on the TimescaleDB option.
SAME_WITH_AND_WITHOUT_TIMESCALEDB = [
    ("select $__time(time_column)", 'select time_column AS "time"'),
    ("select min($__time(time_column))", 'select min(time_column AS "time")'),
    ("select $__timeEpoch(time_column)", 'select extract(epoch from time_column) as "time"'),
    ("WHERE $__timeFilter(time_column)", f"WHERE time_column {FILTER}"),
    ("select $__timeFrom()", "select '2018-04-12T18:00:00Z'"),
    ("select $__timeTo()", "select '2018-04-12T18:05:00Z'"),
    ("select $__unixEpochFilter(time)", "select time >= 1523556000 AND time <= 1523556300"),
    (
        "select $__unixEpochNanoFilter(time)",
        "select time >= 1523556000000000000 AND time <= 1523556300000000000",
    ),
    ("select $__unixEpochFrom()", "select 1523556000"),
    ("select $__unixEpochTo()", "select 1523556300"),
    ("select $__unixEpochNanoFrom()", "select 1523556000000000000"),
    ("select $__unixEpochNanoTo()", "select 1523556300000000000"),
    (
        "SELECT $__unixEpochGroup(time_column+time_adjustment,'5m')",
        "SELECT floor((time_column+time_adjustment)/300)*300",
    ),
    (
        "SELECT $__unixEpochGroupAlias(time_column+time_adjustment,'5m')",
        'SELECT floor((time_column+time_adjustment)/300)*300 AS "time"',
    ),
]


@pytest.mark.parametrize("timescaledb", [False, True], ids=["postgres", "timescaledb"])
@pytest.mark.parametrize(("sql", "expected"), SAME_WITH_AND_WITHOUT_TIMESCALEDB)
def test_macros_from_grafanas_tests(sql: str, expected: str, timescaledb: bool) -> None:
    assert backend(sql, timescaledb=timescaledb) == expected


TIME_GROUP = [
    # (sql, without TimescaleDB, with TimescaleDB); macros_test.go
    (
        "SELECT $__timeGroup(time_column,'5m')",
        "SELECT floor(extract(epoch from time_column)/300)*300",
        "SELECT time_bucket('300.000s',time_column)",
    ),
    (
        "SELECT $__timeGroupAlias(time_column,'5m')",
        'SELECT floor(extract(epoch from time_column)/300)*300 AS "time"',
        "SELECT time_bucket('300.000s',time_column) AS \"time\"",
    ),
    (
        "$__timeGroup(time_column , '5m')",
        "floor(extract(epoch from time_column)/300)*300",
        "time_bucket('300.000s',time_column)",
    ),
    (
        "$__timeGroupAlias(time_column , '5m')",
        'floor(extract(epoch from time_column)/300)*300 AS "time"',
        "time_bucket('300.000s',time_column) AS \"time\"",
    ),
    (
        "GROUP BY $__timeGroup(time_column , '12d')",
        # Go's %v switches to exponent notation from 1e6 on; PostgreSQL reads it fine.
        "GROUP BY floor(extract(epoch from time_column)/1.0368e+06)*1.0368e+06",
        "GROUP BY time_bucket('1036800.000s',time_column)",
    ),
    (
        "GROUP BY $__timeGroup(time_column , '20ms')",
        "GROUP BY floor(extract(epoch from time_column)/0.02)*0.02",
        "GROUP BY time_bucket('0.020s',time_column)",
    ),
    # macros_test.go "pre 5.3 compatibility": a ',' right after $__timeGroup adds the alias.
    (
        "SELECT $__timeGroup(time_column,'5m'), value",
        'SELECT floor(extract(epoch from time_column)/300)*300 AS "time", value',
        "SELECT time_bucket('300.000s',time_column) AS \"time\", value",
    ),
    (
        "SELECT $__timeGroup(time_column,'5m') as time, value",
        "SELECT floor(extract(epoch from time_column)/300)*300 as time, value",
        "SELECT time_bucket('300.000s',time_column) as time, value",
    ),
    # The interval may be unquoted (as after $__interval), and the fill argument changes nothing.
    (
        "$__timeGroup(t, 1h, previous)",
        "floor(extract(epoch from t)/3600)*3600",
        "time_bucket('3600.000s',t)",
    ),
    (
        "$__timeGroupAlias(t,'1m',NULL)",
        'floor(extract(epoch from t)/60)*60 AS "time"',
        "time_bucket('60.000s',t) AS \"time\"",
    ),
    ("$__timeGroup(t, '1d', 0)", "floor(extract(epoch from t)/86400)*86400", None),
    ("$__timeGroup(t, 1w, -1.5)", "floor(extract(epoch from t)/604800)*604800", None),
    ("$__timeGroup(t, 30d)", "floor(extract(epoch from t)/2.592e+06)*2.592e+06", None),
    ("$__timeGroup(t, 1h30m)", "floor(extract(epoch from t)/5400)*5400", None),
    ("$__timeGroup(t, 1.5s)", "floor(extract(epoch from t)/1.5)*1.5", "time_bucket('1.500s',t)"),
    (
        "$__timeGroup(t, 10us)",
        "floor(extract(epoch from t)/1e-05)*1e-05",
        "time_bucket('0.000s',t)",
    ),
    # A fourth argument is ignored without an error.
    ("$__timeGroup(t, 5m, 0, extra)", "floor(extract(epoch from t)/300)*300", None),
]


@pytest.mark.parametrize(("sql", "postgres", "timescaledb"), TIME_GROUP)
def test_time_group(sql: str, postgres: str, timescaledb: str | None) -> None:
    assert backend(sql) == postgres
    if timescaledb is not None:
        assert backend(sql, timescaledb=True) == timescaledb


def test_unix_epoch_group_ignores_timescaledb() -> None:
    sql = "SELECT $__unixEpochGroupAlias(ts, '1h', previous)"
    expected = 'SELECT floor((ts)/3600)*3600 AS "time"'
    assert backend(sql) == expected
    assert backend(sql, timescaledb=True) == expected


@pytest.mark.parametrize(
    ("start", "end", "start_text", "end_text", "start_unix", "end_unix"),
    [
        # macros_test.go, the ranges before 1970 and with half a second.
        (
            datetime(1960, 2, 1, 7, tzinfo=UTC),
            datetime(1965, 2, 3, 8, tzinfo=UTC),
            "1960-02-01T07:00:00Z",
            "1965-02-03T08:00:00Z",
            -312915600,
            -154886400,
        ),
        (
            datetime(1960, 2, 1, 7, tzinfo=UTC),
            datetime(1980, 2, 3, 8, tzinfo=UTC),
            "1960-02-01T07:00:00Z",
            "1980-02-03T08:00:00Z",
            -312915600,
            318412800,
        ),
        (
            datetime(1960, 2, 1, 7, 0, 0, 500_000, tzinfo=UTC),
            datetime(1980, 2, 3, 8, 0, 0, 500_000, tzinfo=UTC),
            "1960-02-01T07:00:00.5Z",
            "1980-02-03T08:00:00.5Z",
            -312915600,  # Go's Unix() rounds down, also before 1970
            318412800,
        ),
    ],
)
def test_old_and_fractional_time_ranges(
    start: datetime,
    end: datetime,
    start_text: str,
    end_text: str,
    start_unix: int,
    end_unix: int,
) -> None:
    tr = TimeRange(start, end)
    assert (
        backend("WHERE $__timeFilter(time_column)", time_range=tr)
        == f"WHERE time_column BETWEEN '{start_text}' AND '{end_text}'"
    )
    assert (
        backend("select $__unixEpochFilter(time)", time_range=tr)
        == f"select time >= {start_unix} AND time <= {end_unix}"
    )
    start_nano = (start - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000
    end_nano = (end - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000
    assert (
        backend("select $__unixEpochNanoFilter(time)", time_range=tr)
        == f"select time >= {start_nano} AND time <= {end_nano}"
    )


def test_times_are_written_in_utc_with_the_shortest_fraction() -> None:
    plus_two = timezone(timedelta(hours=2))
    tr = TimeRange(
        datetime(2024, 3, 1, 12, 0, 0, 120_000, tzinfo=plus_two),
        datetime(2024, 3, 1, 14, 0, 0, 123_456, tzinfo=plus_two),
    )
    assert (
        backend("$__timeFrom() $__timeTo()", time_range=tr)
        == "'2024-03-01T10:00:00.12Z' '2024-03-01T12:00:00.123456Z'"
    )


def test_global_substitutions() -> None:
    # macros_test.go (TestInterpolateSQLCommenter) runs with a 10-minute query interval.
    assert backend("SELECT $__interval") == "SELECT 10m"
    assert backend("SELECT $__interval_ms, $__unixEpochFrom(), $__unixEpochTo()") == (
        "SELECT 600000, 1523556000, 1523556300"
    )
    assert (
        expand_macros(
            "$__timeGroup(t, $__interval)", RANGE, timedelta(seconds=90), timescaledb=False
        )
        == "floor(extract(epoch from t)/60)*60"  # gtime.FormatInterval: 90 s is "1m"
    )


def test_unix_epoch_from_is_a_plain_string_replacement_not_a_macro() -> None:
    with pytest.raises(MacroError, match='unknown macro "__unixEpochFrom"'):
        backend("SELECT $__unixEpochFrom( )")


def test_several_macros_in_one_query() -> None:
    sql = (
        "SELECT $__timeGroupAlias(time, $__interval), avg(value)\n"
        "FROM readings\n"
        "WHERE $__timeFilter(time) AND epoch BETWEEN $__unixEpochFrom() AND $__unixEpochTo()\n"
        "GROUP BY 1 ORDER BY 1"
    )
    assert backend(sql) == (
        'SELECT floor(extract(epoch from time)/600)*600 AS "time", avg(value)\n'
        "FROM readings\n"
        f"WHERE time {FILTER} AND epoch BETWEEN 1523556000 AND 1523556300\n"
        "GROUP BY 1 ORDER BY 1"
    )
    assert backend(sql, timescaledb=True).startswith(
        "SELECT time_bucket('600.000s',time) AS \"time\", avg(value)\n"
    )


def test_nested_parentheses_end_the_arguments_at_the_first_closing_one() -> None:
    # Grafana's macro regexp is \$(\w+)\(([^\)]*)\): no nesting, and arguments split on every ','.
    assert (
        backend("WHERE $__timeFilter(date_trunc('hour', t))")
        == f"WHERE date_trunc('hour' {FILTER})"
    )
    assert backend("SELECT $__time(lower(x))") == 'SELECT lower(x AS "time")'
    with pytest.raises(MacroError, match="error parsing interval b"):
        backend("$__timeGroup(coalesce(a, b), '5m')")
    # What works: an argument without parentheses (a cast is fine).
    assert backend("WHERE $__timeFilter(t::timestamptz)") == f"WHERE t::timestamptz {FILTER}"


def test_time_group_alias_compatibility_looks_at_the_first_occurrence() -> None:
    # The ',' check finds the macro's text anywhere in the query, so the same $__timeGroup in
    # GROUP BY gets the alias too and the query is invalid (see test_expanded_sql_runs).
    sql = "SELECT $__timeGroup(t,'5m'), avg(v) FROM x GROUP BY $__timeGroup(t,'5m')"
    bucket = "floor(extract(epoch from t)/300)*300"
    assert backend(sql) == f'SELECT {bucket} AS "time", avg(v) FROM x GROUP BY {bucket} AS "time"'
    # Different text (a space) is a different occurrence.
    sql = "SELECT $__timeGroup(t,'5m'), avg(v) FROM x GROUP BY $__timeGroup(t, '5m')"
    assert backend(sql) == f'SELECT {bucket} AS "time", avg(v) FROM x GROUP BY {bucket}'


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT $__foo(x)", 'unknown macro "__foo"'),
        ("SELECT $myfunc(x)", 'unknown macro "myfunc"'),
        ("$__timeGroup(t)", "macro __timeGroup needs time column and interval"),
        ("$__unixEpochGroupAlias(t)", "macro __unixEpochGroup needs time column and interval"),
        ("$__timeGroup(t, abc)", "error parsing interval abc"),
        ("$__timeGroup(t, 1.5d)", r"error parsing interval 1\.5d"),  # d, w, M, y: whole only
        ("$__timeGroup(t, 5)", "error parsing interval 5"),  # no unit
        ('$__timeGroup(t, "5m")', 'error parsing interval "5m"'),  # only ' is trimmed
        ("$__timeGroup(t, '0s')", "interval must be positive, got '0s'"),
        ("$__unixEpochGroup(t, -5m)", "interval must be positive, got -5m"),
        ("$__timeGroup(t, 5m, null)", "error parsing fill value null"),  # only NULL
        ("$__timeGroup(t, 5m, Previous)", "error parsing fill value Previous"),
        ("$__timeGroup(t, 5m, 1e999)", "error parsing fill value 1e999"),
    ],
)
def test_macro_errors(sql: str, message: str) -> None:
    with pytest.raises(MacroError, match=message):
        backend(sql)


@pytest.mark.parametrize("fill", ["NULL", "previous", "0", "-1.5", "1e3", ".5", "NaN", "+Inf"])
def test_fill_values_grafana_accepts(fill: str) -> None:
    assert backend(f"$__timeGroup(t, 5m, {fill})") == "floor(extract(epoch from t)/300)*300"


def test_calendar_intervals_count_from_now(monkeypatch: pytest.MonkeyPatch) -> None:
    # gtime.ParseInterval: M and y are "now plus a month/year" in UTC, so they vary.
    monkeypatch.setattr(macros, "_utcnow", lambda: datetime(2023, 6, 1, tzinfo=UTC))
    assert backend("$__timeGroup(t, 1y)") == "floor(extract(epoch from t)/3.16224e+07)*3.16224e+07"
    assert backend("$__timeGroup(t, 1M)") == "floor(extract(epoch from t)/2.592e+06)*2.592e+06"
    monkeypatch.setattr(macros, "_utcnow", lambda: datetime(2023, 1, 31, tzinfo=UTC))
    # Go's AddDate: January 31 plus a month is March 3, 31 days later.
    assert backend("$__timeGroup(t, 1M)") == "floor(extract(epoch from t)/2.6784e+06)*2.6784e+06"
    assert backend("$__timeGroup(t, 1y)") == "floor(extract(epoch from t)/3.1536e+07)*3.1536e+07"


# macros_test.go TestStripSQLComments (the cases that do not involve SQLCommenter tags, which
# only Grafana's main branch keeps).
STRIP_COMMENTS = [
    ("SELECT 1 -- a comment", "SELECT 1 "),
    ("SELECT /* a comment */ 1", "SELECT  1"),
    ("SELECT /*\n  multiline\n  comment\n*/ 1", "SELECT  1"),
    ("SELECT '-- not a comment' AS label", "SELECT '-- not a comment' AS label"),
    ("SELECT '/* not a comment */' AS label", "SELECT '/* not a comment */' AS label"),
    ('SELECT "col -- name" FROM t', 'SELECT "col -- name" FROM t'),
    ('SELECT "col /* name */" FROM t', 'SELECT "col /* name */" FROM t'),
    ("SELECT 'it''s fine -- not a comment' AS v", "SELECT 'it''s fine -- not a comment' AS v"),
    ('SELECT "col ""-- name""" FROM t', 'SELECT "col ""-- name""" FROM t'),
    ("SELECT '-- in string' AS a -- real comment", "SELECT '-- in string' AS a "),
    ("SELECT '/* in string */' AS a /* real comment */", "SELECT '/* in string */' AS a "),
    ("SELECT col FROM t WHERE col > 1", "SELECT col FROM t WHERE col > 1"),
    ("SELECT 1 -- comment\nFROM t", "SELECT 1 \nFROM t"),
    ("SELECT $$ -- not a comment $$", "SELECT $$ -- not a comment $$"),
    ("SELECT $$ /* not a comment */ $$", "SELECT $$ /* not a comment */ $$"),
    ("SELECT $body$ -- not a comment $body$", "SELECT $body$ -- not a comment $body$"),
    ("SELECT $__timeFrom() -- comment", "SELECT '2018-04-12T18:00:00Z' "),
    ("SELECT $1 -- comment", "SELECT $1 "),
    # Released Grafana strips SQLCommenter tags as well.
    ("SELECT 1 /*application='grafana'*/", "SELECT 1 "),
]


@pytest.mark.parametrize(("sql", "expected"), STRIP_COMMENTS)
def test_comments_are_stripped_before_expansion(sql: str, expected: str) -> None:
    assert backend(sql) == expected


def test_macros_in_comments_are_not_expanded() -> None:
    assert backend("SELECT 1 -- $__bogus(x)\n/* $__timeGroup(t) */") == "SELECT 1 \n"


# --- frontend: template variables ----------------------------------------------------------------

HOST = Variable("host", ("server01",))
USER = Variable("user", ("O'Brien",))
HOSTS = Variable("hosts", ("srv1", "srv2"), multi=True)
NAMES = Variable("names", ("O'Brien", "user.name", "test's"), multi=True)
VARIABLES = [HOST, USER, HOSTS, NAMES]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        # truth table
        ("WHERE host = $host", "WHERE host = server01"),
        ("WHERE host = '$host'", "WHERE host = 'server01'"),
        ("WHERE host IN ($hosts)", "WHERE host IN ('srv1','srv2')"),
        ("WHERE host IN (${hosts:sqlstring})", "WHERE host IN ('srv1','srv2')"),
        ("WHERE host IN ('$hosts')", "WHERE host IN (''srv1','srv2'')"),
        ("WHERE name = '$user'", "WHERE name = 'O''Brien'"),
        ("WHERE name IN ($names)", "WHERE name IN ('O''Brien','user.name','test''s')"),
        ('SELECT * FROM "$host"."$host"', 'SELECT * FROM "server01"."server01"'),
        (
            "WHERE $__timeFilter(ts) AND h IN ($hosts)",
            "WHERE $__timeFilter(ts) AND h IN ('srv1','srv2')",
        ),
        # every syntax of the variable regexp
        ("${host}", "server01"),
        ("${user}", "O''Brien"),
        ("[[user]]", "O''Brien"),
        ("[[user:raw]]", "O'Brien"),
        ("${user:raw}", "O'Brien"),
        ("${user:csv}", "O'Brien"),
        ("${hosts:csv}", "srv1,srv2"),
        ("${hosts:raw}", "srv1,srv2"),
        ("${hosts:pipe}", "srv1|srv2"),
        ("${hosts:glob}", "{srv1,srv2}"),
        # formatRegistry: singlequote escapes with a backslash (not valid PostgreSQL escaping).
        ("${user:singlequote}", "'O\\'Brien'"),
        ("${names:singlequote}", "'O\\'Brien','user.name','test\\'s'"),
        ("${user:sqlstring}", "'O''Brien'"),
        ("${names:sqlstring}", "'O''Brien','user.name','test''s'"),
        ("${host}name", "server01name"),
        ("$host.name", "server01.name"),
        # left alone: macros, Grafana's own variables, positional parameters, ${x:} (no match)
        ("$__timeGroup($host, $__interval)", "$__timeGroup(server01, $__interval)"),
        ("${__from} [[__to]] $__range", "${__from} [[__to]] $__range"),
        ("WHERE id = $1 AND x = $2", "WHERE id = $1 AND x = $2"),
        ("${host:}", "${host:}"),
        ("$", "$"),
    ],
)
def test_interpolate(sql: str, expected: str) -> None:
    assert interpolate(sql, VARIABLES) == expected


def test_sqlstring_backslash_escapes_double_quotes() -> None:
    # formatRegistry (scenes): 'test"value' becomes 'test\"value'; Grafana core did not do this.
    quoted = Variable("q", ('test"value',))
    assert interpolate("${q:sqlstring}", [quoted]) == "'test\\\"value'"
    assert interpolate("$q", [quoted]) == 'test"value'


def test_multi_variable_with_one_or_no_value() -> None:
    one = Variable("one", ("app1",), multi=True)
    none = Variable("none", (), multi=True)
    assert interpolate("h = $one", [one]) == "h = 'app1'"  # truth table
    assert interpolate("${one:glob}", [one]) == "app1"
    assert interpolate("IN ($none)", [none]) == "IN ()"


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("WHERE host = $hostname", "unknown variable 'hostname'"),  # \w+ is greedy
        ("WHERE host = ${device}", "unknown variable 'device'"),
        ("WHERE host = [[device:csv]]", "unknown variable 'device'"),
        ("$1abc", "unknown variable '1abc'"),
        ("${host:lucene}", "unsupported variable format 'lucene'"),
        ("${host:date:iso}", "unsupported variable format 'date:iso'"),
        ("${host.text}", "field paths are not supported"),
    ],
)
def test_interpolate_errors(sql: str, message: str) -> None:
    with pytest.raises(MacroError, match=message):
        interpolate(sql, VARIABLES)


@pytest.mark.parametrize(
    "make",
    [  # each builds something invalid
        lambda: Variable("host", ("a", "b")),
        lambda: Variable("host", ()),
        lambda: Variable("__interval", ("1m",)),
        lambda: Variable("my-var", ("x",)),
        lambda: Variable("host", ["a"], multi=True),  # type: ignore[arg-type]
        lambda: TimeRange(datetime(2024, 1, 1), datetime(2024, 1, 2)),
    ],
)
def test_invalid_inputs(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        make()


def test_duplicate_variables() -> None:
    with pytest.raises(ValueError, match="given twice"):
        interpolate("$host", [HOST, HOST])


@pytest.mark.parametrize(
    ("interval", "text", "ms"),
    [
        # rangeutil.secondsToHms keeps the largest whole unit only.
        (timedelta(minutes=1), "1m", "60000"),
        (timedelta(seconds=90), "1m", "90000"),
        (timedelta(hours=1, minutes=30), "1h", "5400000"),
        (timedelta(milliseconds=500), "500ms", "500"),
        (timedelta(seconds=30), "30s", "30000"),
        (timedelta(days=30), "30d", "2592000000"),
        (timedelta(days=366), "1y", "31622400000"),
    ],
)
def test_interval_variables_as_the_frontend_formats_them(
    interval: timedelta, text: str, ms: str
) -> None:
    sql = "$__interval ${__interval} $__interval_ms ${__interval_ms:sqlstring}"
    assert interpolate(sql, [], interval=interval) == f"{text} {text} {ms} '{ms}'"


# --- both steps ----------------------------------------------------------------------------------


def test_expand_interpolates_variables_before_macros() -> None:
    column = Variable("column", ("time",))
    sql = (
        "SELECT $__timeGroupAlias($column, $__interval, 0), avg(value) FROM readings "
        "WHERE $__timeFilter($column) AND device IN ($hosts) AND note = '$user' "
        "GROUP BY 1 -- $bogus in a comment is still a template variable to the frontend"
    )
    given = [column, HOSTS, USER]
    with pytest.raises(MacroError, match="unknown variable 'bogus'"):
        expand(sql, RANGE, timedelta(seconds=90), timescaledb=False, variables=given)
    sql = sql.replace("$bogus", "bogus")
    assert expand(sql, RANGE, timedelta(seconds=90), timescaledb=True, variables=given) == (
        # The frontend's $__interval for 90 s is "1m", so the buckets are a minute.
        "SELECT time_bucket('60.000s',time) AS \"time\", avg(value) FROM readings "
        f"WHERE time {FILTER} AND device IN ('srv1','srv2') AND note = 'O''Brien' "
        "GROUP BY 1 "
    )


def test_expand_sends_whole_milliseconds() -> None:
    tr = TimeRange(
        datetime(2024, 1, 1, 0, 0, 0, 123_999, tzinfo=UTC),
        datetime(2024, 1, 1, 1, 0, 0, 999, tzinfo=UTC),
    )
    assert (
        expand("$__timeFilter(t)", tr, timedelta(milliseconds=1500), timescaledb=False)
        == "t BETWEEN '2024-01-01T00:00:00.123Z' AND '2024-01-01T01:00:00Z'"
    )
    assert expand("$__interval_ms", tr, timedelta(microseconds=1500), timescaledb=False) == "1"
    with pytest.raises(ValueError, match="at least 1 ms"):
        expand("1", tr, timedelta(microseconds=999), timescaledb=False)


# --- against PostgreSQL --------------------------------------------------------------------------


def test_expanded_sql_runs_on_postgresql() -> None:
    """Expanded queries are valid PostgreSQL and select what they should (TimescaleDB's
    time_bucket is not tried: the test server may not have it)."""
    tr = TimeRange(datetime(2024, 5, 1, 10, 0, tzinfo=UTC), datetime(2024, 5, 1, 11, 0, tzinfo=UTC))
    device = Variable("device", ("a", "b'c"), multi=True)

    def run(sql: str, interval: timedelta = timedelta(minutes=15)) -> list[tuple[Any, ...]]:
        expanded = expand(sql, tr, interval, timescaledb=False, variables=[device])
        return conn.execute(expanded.encode()).fetchall()

    with psycopg.connect(ADMIN_URL) as conn:
        conn.execute(
            "CREATE TEMP TABLE readings (time timestamptz, epoch bigint, device text, value float8)"
            " ON COMMIT DROP"
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO readings"
                " VALUES (%(t)s, extract(epoch from %(t)s)::bigint, %(d)s, %(v)s)",
                [
                    {"t": datetime(2024, 5, 1, 9, 59, tzinfo=UTC), "d": "a", "v": 100.0},
                    {"t": datetime(2024, 5, 1, 10, 0, tzinfo=UTC), "d": "a", "v": 1.0},
                    {"t": datetime(2024, 5, 1, 10, 14, tzinfo=UTC), "d": "b'c", "v": 3.0},
                    {"t": datetime(2024, 5, 1, 10, 20, tzinfo=UTC), "d": "a", "v": 5.0},
                    {"t": datetime(2024, 5, 1, 10, 20, tzinfo=UTC), "d": "z", "v": 50.0},
                    {"t": datetime(2024, 5, 1, 11, 0, tzinfo=UTC), "d": "a", "v": 7.0},
                    {"t": datetime(2024, 5, 1, 11, 1, tzinfo=UTC), "d": "a", "v": 100.0},
                ],
            )

        start = 1714557600  # 2024-05-01T10:00:00Z
        grouped = run(
            "SELECT $__timeGroupAlias(time, $__interval), avg(value) FROM readings\n"
            "WHERE $__timeFilter(time) AND device IN ($device) -- the panel's devices\n"
            "GROUP BY 1 ORDER BY 1"
        )
        assert [(int(t), v) for t, v in grouped] == [
            (start, 2.0),
            (start + 900, 5.0),
            (start + 3600, 7.0),
        ]
        # Without the alias; the 12-day bucket's divisor is written 1.0368e+06.
        twelve_days = run(
            "SELECT $__timeGroup(time, '12d', previous) AS t, count(*) FROM readings GROUP BY 1",
            timedelta(days=12),
        )
        assert [(int(t), n) for t, n in twelve_days] == [(1713830400, 7)]
        assert run(
            "SELECT count(*) FROM readings WHERE time >= $__timeFrom() AND time < $__timeTo()"
        ) == [(4,)]
        assert run(
            "SELECT min(epoch), max(epoch) FROM readings WHERE $__unixEpochFilter(epoch)"
        ) == [(start, start + 3600)]
        per_half_hour = run(
            "SELECT $__unixEpochGroupAlias(epoch, 30m), count(*) FROM readings"
            " WHERE epoch BETWEEN $__unixEpochFrom() AND $__unixEpochTo() GROUP BY 1 ORDER BY 1"
        )
        assert [(int(t), n) for t, n in per_half_hour] == [(start, 4), (start + 3600, 1)]
        assert run(
            "SELECT $__time(time), $__timeEpoch(time) FROM readings"
            " WHERE $__timeFilter(time) AND device = 'b''c'"
        ) == [(datetime(2024, 5, 1, 10, 14, tzinfo=UTC), 1714558440)]

        # Grafana's pre-5.3 rule aliases the GROUP BY copy too: not valid SQL.
        with pytest.raises(psycopg.errors.SyntaxError), conn.transaction():
            run(
                "SELECT $__timeGroup(time, 5m), count(*) FROM readings"
                " GROUP BY $__timeGroup(time, 5m)"
            )
        conn.rollback()
