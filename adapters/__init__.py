"""Envelope adapters: network server and SenML messages → device-level uplinks.

An adapter reads one MQTT message and returns the uplinks it carries: which device (DevEUI or
the network server's id), when (gateway time, else the network server's), the decoded fields,
and hints about the device's model. Mapping those fields onto a sensor kind needs the device
registry and happens in ingest (``ingest.uplinks``). Adapters are pure and never raise anything
but ``EnvelopeError``.
"""

from adapters._uplink import EnvelopeError, Uplink
from adapters.route import adapt

__all__ = ["EnvelopeError", "Uplink", "adapt"]
