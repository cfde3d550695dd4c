"""Servers placewatch starts for itself when none is configured or running: an embedded
PostgreSQL (``postgres``), a private MQTT broker (``broker``), and the choice between a
configured service, the local one and an embedded one (``resolve``)."""
