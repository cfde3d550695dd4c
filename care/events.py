"""What the care detectors see of a home: a time-ordered stream of sensor events.

Live readings (``care.readings``) and the evaluation data sets (``care.formats``) are both turned
into these events, so the detectors run the same code on both. An event is a sensor's report,
not yet an interpretation: the activity model (``care.activity``) decides what is activity (a
change of state, a motion count above zero, an appliance switched on), and every event, even a
periodic report with nothing new, shows that the home's hub is online.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Signal(StrEnum):
    MOTION = "motion"  # value: detections (> 0 is activity)
    CONTACT = "contact"  # value: open (a change is activity): cupboards, fridge, inner doors
    FRONT_DOOR = "front_door"  # value: open (a change may be the resident going out)
    APPLIANCE = "appliance"  # value: watts (switching on is activity): kettle, toaster
    BED = "bed"  # value: occupied (a change is activity; long sessions are watched)
    CHAIR = "chair"  # value: occupied
    REPORT = "report"  # no value: a periodic report (luminance, temperature, battery)


@dataclass(frozen=True, slots=True)
class HomeEvent:
    """One sensor report at ``at`` (epoch seconds, UTC). ``source`` identifies the sensor (state
    changes are detected per source); ``where`` names it for people ("kitchen", "front door")."""

    at: float
    source: str
    signal: Signal
    value: float | bool | None = None
    where: str = ""
