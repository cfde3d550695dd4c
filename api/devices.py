"""``/v1/devices``: the devices a team may see, with when they were last heard and whether
they have gone silent."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from api import queries
from api.audit import record_access
from api.auth import Caller, require
from api.db import transaction
from api.errors import AUTH_RESPONSES, NOT_FOUND, not_found
from api.schemas import DEVICE_ID, Device, DevicePage, DeviceStatus, SensorKind, TextQuery

router = APIRouter(prefix="/v1/devices", tags=["devices"], responses=AUTH_RESPONSES)

Reader = Annotated[Caller, Depends(require("devices:read"))]


@router.get("", response_model=DevicePage, summary="List devices the team can see")
async def list_devices(
    request: Request,
    caller: Reader,
    kind: SensorKind | None = None,
    site: TextQuery = None,
    ward: TextQuery = None,
    status: DeviceStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> DevicePage:
    f = queries.DeviceFilter(kind=kind, site=site, ward=ward, status=status)
    async with transaction(request) as cur:
        rows = await queries.list_devices(cur, caller.principal.team_id, f, limit, offset)
        await record_access(cur, caller.accessor, "devices.list", rows)
    return DevicePage(
        devices=[Device.model_validate(r) for r in rows],
        next_offset=offset + limit if len(rows) == limit else None,
    )


@router.get(
    "/{device_id}", response_model=Device, responses=NOT_FOUND, summary="One device and its status"
)
async def get_device(
    request: Request,
    caller: Reader,
    device_id: Annotated[str, Path(pattern=DEVICE_ID)],
) -> Device:
    async with transaction(request) as cur:
        row = await queries.visible_device(cur, caller.principal.team_id, device_id)
        if row is None:
            raise not_found(f"device {device_id}")
        await record_access(cur, caller.accessor, "devices.get", [row])
    return Device.model_validate(row)
