"""Ingest: MQTT → validated readings → PostgreSQL, acknowledged only after commit."""

from ingest.service import IngestService, run

__all__ = ["IngestService", "run"]
