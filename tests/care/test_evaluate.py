"""The evaluation harness: it measures what it says on a home whose truth is known (a simulated
resident with a regular routine), is deterministic, and the command runs end to end on a real
data set with its report, JSON and plot."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from care.evaluate import evaluate, median
from care.formats import HomeLog
from placewatch.cli import main
from placewatch.settings import Settings
from rules.kinds.care import CareRule
from rules.worker import load_configured_rules
from tests.care.residents import LONDON, Resident

DATA = Path(__file__).parents[3] / "shared" / "data" / "smart-home"


def default_care_rules() -> list[CareRule]:
    rules = load_configured_rules(Settings(rules_defaults=True, rules_path="")).rules
    return [r for r in rules if isinstance(r, CareRule)]


def simulated(days: int = 42) -> HomeLog:
    home = Resident(date(2025, 3, 3), days, seed=5)
    return HomeLog.build("sim-1", LONDON, home.events(), heartbeat=True, source=Path("simulated"))


@pytest.fixture(autouse=True)
def _keep_logging() -> Iterator[None]:
    """``main`` sets up logging to the stderr pytest captures for this test; put the handlers
    back, or later log records (at the end of the run) go to a closed stream."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_the_harness_measures_a_regular_resident_as_the_targets_expect() -> None:
    report = evaluate(simulated(), default_care_rules(), seed=3)
    assert report.valid_days >= 40
    assert report.false_per_month() <= 1.0, [e.summary for e in report.episodes]
    # One incident per day past warm-up, each one found, fast: the routine is regular.
    assert len(report.acute) >= 30
    assert all(t.alert_at is not None and t.same_day for t in report.acute)
    delays = report.acute_delays()
    assert (median(delays) or 0) <= 2 * 3600
    assert min(delays) > 0  # never before the incident
    # Declines: the deeper, the sooner; a halving is found within two days.
    d50, d70 = median(report.decline_days(0.5)), median(report.decline_days(0.7))
    assert d50 is not None and d70 is not None
    assert d70 <= d50 <= 2
    assert all(d != float("inf") for d in report.decline_days(0.5))


def test_the_evaluation_is_deterministic() -> None:
    log = simulated(30)
    rules = default_care_rules()
    first, second = evaluate(log, rules, seed=7), evaluate(log, rules, seed=7)
    assert first.acute == second.acute
    assert first.declines == second.declines
    assert first.episodes == second.episodes
    other = evaluate(log, rules, seed=8)
    assert [t.incident_at for t in other.acute] != [t.incident_at for t in first.acute]


def test_the_command_reports_writes_json_and_a_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = DATA / "kasteren-a-sense.txt"
    if not path.exists():
        pytest.skip(f"{path} is not here (the data is not in the repository)")
    plot = tmp_path / "care.png"
    argv = ["care", "evaluate", "--format", "kasteren", str(path), "--no-progress"]
    assert main([*argv, "--json", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    report = json.loads(out[: out.rindex("}") + 1])
    summary = report["summary"]
    assert summary["resident"] == "kasteren-a"
    assert summary["valid_days"] == 27
    assert summary["acute_trials"] == len(report["acute"]) > 10
    assert set(summary["decline_trials"]) == {"0.3", "0.5", "0.7"}
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "False alert episodes on unmodified data" in text
    assert "Acute incidents" in text and "Declines" in text


def test_an_unreadable_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "nothing.txt"
    bad.write_text("not a data set\n")
    assert main(["care", "evaluate", "--format", "kasteren", str(bad), "--no-progress"]) == 1
    assert "cannot load" in capsys.readouterr().err
