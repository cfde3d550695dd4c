"""Simulated device fleets publishing over MQTT."""
