"""placewatch: telemetry pipeline for smart places.

The public surface is small: settings, the sensor kinds and their payload models. Services live in
the top-level packages ``ingest``, ``storage``, ``simulators`` (and later ``rules``).
"""

from placewatch.kinds import KINDS, Kind
from placewatch.settings import Settings

__all__ = ["KINDS", "Kind", "Settings"]
__version__ = "0.1.0"
