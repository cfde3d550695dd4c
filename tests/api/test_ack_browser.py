"""The acknowledge page in a real headless Chromium at phone size, with page scripts disabled
(it must work without JavaScript) and driven by the keyboard: open the link from an alert
event, read the explanation, type a note, Tab to Acknowledge and press Enter; the API then
shows the alert acknowledged with the note. The same link again, an expired and a tampered one
are refused with their own pages. Checks the WCAG 2.2 AA points a test can measure.

With ``PLACEWATCH_SCREENSHOT_DIR`` set, saves the page as ``ack-page.png`` there (for docs).
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
from itsdangerous import TimestampSigner
from playwright.sync_api import Page, ViewportSize

from notify.links import AckLink, ack_url
from tests.api.conftest import World, ago, bearer
from tests.api.test_ack_page import tamper
from tests.support.api_server import ApiServer
from tests.support.browser import chromium

PHONE: ViewportSize = {"width": 390, "height": 844}
NOTE = "Calling her daughter, then going round. ETA 20 minutes."

# Contrast of every piece of text against its effective background (WCAG 1.4.3): 4.5:1, or
# 3:1 for large text (24px, or 18.66px bold).
_CONTRAST = """() => {
  const rgb = s => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const c = [r, g, b].map(v => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const background = el => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || c[3] > 0) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || el.closest('.visually-hidden')) continue;
    const st = getComputedStyle(el);
    const size = parseFloat(st.fontSize), bold = parseInt(st.fontWeight) >= 700;
    const large = size >= 24 || (bold && size >= 18.66);
    const [a, b] = [lum(rgb(st.color)), lum(background(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    out.push({text: el.textContent.trim().slice(0, 30), ratio, needed: large ? 3 : 4.5});
  }
  return out;
}"""


def _link(api: ApiServer, alert_id: int) -> str:
    return ack_url(api.settings(), AckLink(alert_id, "carers-a", f"msg_{uuid.uuid4().hex}"))


def _check_accessibility(page: Page) -> None:
    assert page.get_attribute("html", "lang") == "en-GB"
    assert "width=device-width" in (page.get_attribute("meta[name=viewport]", "content") or "")
    levels = [int(h.evaluate("e => e.tagName")[1]) for h in page.locator("h1, h2, h3").all()]
    assert levels[0] == 1 and levels.count(1) == 1
    assert all(b - a <= 1 for a, b in itertools.pairwise(levels)), levels
    # Each form control has a real label.
    for control in page.locator("textarea, input, select").all():
        control_id = control.get_attribute("id")
        assert control_id and page.locator(f"label[for={control_id}]").count() == 1
    low = [c for c in page.evaluate(_CONTRAST) if c["ratio"] < c["needed"]]
    assert not low, f"text below the contrast minimum: {low}"
    # Target size (2.5.8): at least 24 x 24 CSS px.
    box = page.get_by_role("button", name="Acknowledge").bounding_box()
    assert box and box["height"] >= 24 and box["width"] >= 24
    # Nothing wider than the phone (1.4.10 reflow).
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def _focused(page: Page) -> dict[str, Any]:
    info: dict[str, Any] = page.evaluate(
        """() => { const e = document.activeElement, s = getComputedStyle(e);
                   return {tag: e.tagName, text: e.textContent.trim(), id: e.id,
                           outline: s.outlineStyle, width: parseFloat(s.outlineWidth)}; }"""
    )
    return info


def test_acknowledge_in_a_browser_with_the_keyboard(
    world: World, api: ApiServer, http: httpx.Client, keys: dict[str, str]
) -> None:
    alert_id = world.care_alert(
        "r-a1",
        rule_id="activity-decline",
        severity="critical",
        opened_at=ago(minutes=25),
        summary="Activity much lower than usual today: 6 active half-hours, about 31 expected",
        observed={
            "expected_active_half_hours": 31,
            "usual_minimum_active_half_hours": 22,
            "active_half_hours": 6,
            "last_activity_at": ago(hours=5, minutes=10).isoformat(),
            "last_activity_sensor": "kitchen motion",
            "front_door_opened": False,
        },
    )
    url = _link(api, alert_id)
    # For the expired and tampered links; made here because Playwright's sync API runs an
    # event loop in this thread while the browser is open (World.alert uses asyncio.run).
    other = world.care_alert("r-a2")

    with chromium() as browser:
        context = browser.new_context(
            viewport=PHONE,
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
            locale="en-GB",
            java_script_enabled=False,
        )
        page = context.new_page()
        response = page.goto(url)
        assert response is not None and response.status == 200
        assert (
            page.get_by_role("heading", level=1)
            .inner_text()
            .startswith("Activity much lower than usual today")
        )
        assert page.get_by_text("Last activity", exact=True).is_visible()
        _check_accessibility(page)
        if shots := os.environ.get("PLACEWATCH_SCREENSHOT_DIR"):
            Path(shots).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(shots) / "ack-page.png"), full_page=True)

        # Keyboard only: the first Tab reaches the note (nothing focusable comes before it).
        page.keyboard.press("Tab")
        assert _focused(page)["id"] == "note"
        page.keyboard.type(NOTE)
        page.keyboard.press("Tab")
        focused = _focused(page)
        assert (focused["tag"], focused["text"]) == ("BUTTON", "Acknowledge")
        assert focused["outline"] == "solid" and focused["width"] >= 2, "focus must be visible"
        with page.expect_navigation() as navigation:
            page.keyboard.press("Enter")
        done = navigation.value
        assert done is not None and done.status == 200
        assert page.get_by_role("heading", level=1).inner_text() == "Alert acknowledged"
        assert page.get_by_text(NOTE).is_visible()

        # The API agrees.
        alert = http.get(f"/v1/alerts/{alert_id}", headers=bearer(keys["carers-a"])).json()
        assert alert["state"] == "acknowledged"
        assert alert["acknowledged_by"].startswith("team:carers-a/link:msg_")
        assert alert["events"][-1]["event"] == "acknowledged"
        assert alert["events"][-1]["detail"] == {"note": NOTE}

        # The same link again: used, and says when.
        again = page.goto(url)
        assert again is not None and again.status == 410
        assert page.get_by_role("heading", level=1).inner_text() == (
            "This link has already been used"
        )
        assert "It was used on " in page.inner_text("main")

        # Expired: signed longer ago than the links live.
        signed = int(time.time()) - api.settings().link_ttl_s - 60
        with mock.patch.object(TimestampSigner, "get_timestamp", return_value=signed):
            expired = _link(api, other)
        r = page.goto(expired)
        assert r is not None and r.status == 410
        assert page.get_by_role("heading", level=1).inner_text() == "This link has expired"

        # Tampered: the link edited to name another alert.
        r = page.goto(tamper(_link(api, other)))
        assert r is not None and r.status == 400
        assert page.get_by_role("heading", level=1).inner_text() == "This link is not valid"
        _check_accessibility_of_message(page)
        context.close()

    assert world.scalar("SELECT state FROM alerts WHERE alert_id = %s", other) == "open"


def _check_accessibility_of_message(page: Page) -> None:
    assert page.get_attribute("html", "lang") == "en-GB"
    low = [c for c in page.evaluate(_CONTRAST) if c["ratio"] < c["needed"]]
    assert not low, low
