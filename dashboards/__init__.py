"""Grafana dashboards for placewatch."""
