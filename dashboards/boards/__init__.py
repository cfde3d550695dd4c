"""The dashboards, by Grafana folder. Each module's ``board()`` returns one dashboard."""

from __future__ import annotations

from collections.abc import Callable

from dashboards.boards import air, bins, deliveries, flood, home, operations, pipeline
from dashboards.panels import Json

# Folder title -> boards. Grafana's file provider makes a folder of each directory; its
# permissions are how a deployment keeps the Care folder to carers.
FOLDERS: dict[str, list[Callable[[], Json]]] = {
    "Operations": [
        operations.board,
        bins.board,
        air.board,
        flood.board,
        deliveries.board,
    ],
    "Care": [home.board],
    "Platform": [pipeline.board],
}
