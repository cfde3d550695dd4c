"""The evaluation report, as text against the targets, as JSON, and as a plot."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from care.evaluate import DECLINE_LEVELS, Report, median, percentile

# DESIGN.md's targets for care alerts.
TARGET_FALSE_PER_MONTH = 1.0
TARGET_ACUTE_MEDIAN_H = 2.0
TARGET_DECLINE50_DAYS = 2.0


def _hours(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds == float("inf"):
        return "not within 24 h"
    return f"{seconds / 3600:.2f} h"


def _days(value: float | None) -> str:
    if value is None:
        return "-"
    return "not within 14 d" if value == float("inf") else f"{value:g} d"


def _mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "MISSED")


def summary(report: Report) -> dict[str, Any]:
    delays = report.acute_delays()
    med = median(delays)
    d50 = median(report.decline_days(0.5))
    by_rule: dict[str, int] = {}
    for e in report.episodes:
        by_rule[e.rule_id] = by_rule.get(e.rule_id, 0) + 1
    not_same_day = sum(1 for t in report.acute if not t.same_day)
    return {
        "resident": report.resident,
        "period": f"{report.first_day} to {report.last_day}",
        "valid_days": report.valid_days,
        "days": report.days,
        "false_episodes": len(report.episodes),
        "false_by_rule": by_rule,
        "false_per_month": report.false_per_month(),
        "acute_trials": len(report.acute),
        "acute_median_s": med,
        "acute_p90_s": percentile(delays, 0.9),
        "acute_not_same_day": not_same_day / len(report.acute) if report.acute else None,
        "decline_median_days": {lvl: median(report.decline_days(lvl)) for lvl in DECLINE_LEVELS},
        "decline_detected": {
            lvl: sum(1 for d in report.decline_days(lvl) if d != float("inf"))
            for lvl in DECLINE_LEVELS
        },
        "decline_trials": {lvl: len(report.decline_days(lvl)) for lvl in DECLINE_LEVELS},
        "targets": {
            "false_per_month": report.false_per_month() <= TARGET_FALSE_PER_MONTH
            if report.months
            else None,
            "acute_median": med <= TARGET_ACUTE_MEDIAN_H * 3600 if med is not None else None,
            "decline50_median": d50 <= TARGET_DECLINE50_DAYS if d50 is not None else None,
        },
    }


def render(report: Report) -> str:
    s = summary(report)
    lines = [
        f"{s['resident']}: {s['period']} ({report.timezone}), {s['valid_days']} of {s['days']} "
        f"days with complete data ({report.months:.2f} resident-months)",
        "",
        f"False alert episodes on unmodified data: {s['false_episodes']} = "
        f"{s['false_per_month']:.2f} per resident-month (target <= {TARGET_FALSE_PER_MONTH:g}: "
        f"{_mark(s['targets']['false_per_month'])})",
    ]
    for rule_id, n in sorted(s["false_by_rule"].items()):
        lines.append(f"  {rule_id}: {n}")
    lines += [
        "",
        f"Acute incidents (all activity stops at a random moment 08:00-20:00): "
        f"{s['acute_trials']} trials",
        f"  delay median {_hours(s['acute_median_s'])} (target <= {TARGET_ACUTE_MEDIAN_H:g} h: "
        f"{_mark(s['targets']['acute_median'])}), 90th percentile {_hours(s['acute_p90_s'])}",
        "  not detected the same day: "
        + (f"{s['acute_not_same_day']:.0%}" if s["acute_not_same_day"] is not None else "-"),
        "",
        "Declines (share of active quarter-hours removed from a start day on):",
    ]
    for lvl in DECLINE_LEVELS:
        mark = f" (target <= 2 d: {_mark(s['targets']['decline50_median'])})" if lvl == 0.5 else ""
        lines.append(
            f"  {lvl:.0%}: median {_days(s['decline_median_days'][lvl])}{mark}, detected "
            f"within 14 d in {s['decline_detected'][lvl]} of {s['decline_trials'][lvl]}"
        )
    if report.sweep:
        lines += ["", "Inactivity factor trade-off (inactivity rule alone):"]
        lines.append("  factor  false/month  median delay  p90 delay  missed same day")
        for row in report.sweep:
            lines.append(
                f"  {row['factor']:>6.2f}  {row['false_per_month'] or 0:>11.2f}  "
                f"{_num(row['median_delay_h'])}  {_num(row['p90_delay_h'])}  "
                f"{_pct(row['missed_same_day'])}"
            )
    if report.episodes:
        lines += ["", "Episodes (every one counts as false here):"]
        lines += [f"  {e.rule_id}: {e.summary}" for e in report.episodes[:30]]
        if len(report.episodes) > 30:
            lines.append(f"  … and {len(report.episodes) - 30} more")
    return "\n".join(lines)


def _num(h: float | None) -> str:
    if h is None:
        return f"{'-':>12}"
    return f"{'inf':>10} h" if h == float("inf") else f"{h:>10.2f} h"


def _pct(x: float | None) -> str:
    return f"{'-':>15}" if x is None else f"{x:>15.0%}"


def to_json(report: Report) -> str:
    def clean(o: Any) -> Any:
        if isinstance(o, float) and o == float("inf"):
            return None
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, list):
            return [clean(v) for v in o]
        return o

    return json.dumps(clean({"summary": summary(report), **asdict(report)}), indent=1)


def plot(report: Report, path: Path) -> None:
    """Acute delays, decline detection and the inactivity trade-off, in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    fig.suptitle(f"placewatch care evaluation: {report.resident} ({report.valid_days} valid days)")

    ax = axes[0]
    delays = sorted(d / 3600 for d in report.acute_delays() if d != float("inf"))
    n = len(report.acute)
    if n:
        ax.step(delays, [(i + 1) / n for i in range(len(delays))], where="post")
    ax.axvline(TARGET_ACUTE_MEDIAN_H, color="grey", linestyle="--", label="target median")
    ax.axhline(0.5, color="grey", linestyle=":")
    ax.set(
        xlabel="hours from incident to alert",
        ylabel="share of incidents detected",
        title=f"Acute incidents ({n} trials)",
        ylim=(0, 1.02),
    )
    ax.legend(loc="lower right")

    ax = axes[1]
    for lvl in DECLINE_LEVELS:
        days = report.decline_days(lvl)
        finite = sorted(d for d in days if d != float("inf"))
        if days:
            xs = [0, *finite, 14]
            ys = [0, *[(i + 1) / len(days) for i in range(len(finite))], len(finite) / len(days)]
            ax.step(xs, ys, where="post", label=f"{lvl:.0%} less active time")
    ax.axvline(TARGET_DECLINE50_DAYS, color="grey", linestyle="--", label="target (50 %)")
    ax.set(
        xlabel="days from decline start to alert",
        ylabel="share detected",
        title="Declines",
        xlim=(0, 14),
        ylim=(0, 1.02),
    )
    ax.legend(loc="lower right")

    ax = axes[2]
    rows = [r for r in report.sweep if r["median_delay_h"] not in (None, float("inf"))]
    if rows:
        ax.plot([r["false_per_month"] for r in rows], [r["median_delay_h"] for r in rows], "o-")
        for r in rows:
            ax.annotate(f"x{r['factor']:g}", (r["false_per_month"], r["median_delay_h"]))
    ax.axvline(TARGET_FALSE_PER_MONTH, color="grey", linestyle="--")
    ax.axhline(TARGET_ACUTE_MEDIAN_H, color="grey", linestyle="--")
    ax.set(
        xlabel="false inactivity episodes per resident-month",
        ylabel="median delay (h)",
        title="Inactivity limit factor: trade-off",
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
