"""Stable identifiers derived from names, so the same scenario always registers the same devices
and the same seed always produces the same envelopes."""

from __future__ import annotations

import hashlib
import random
import uuid


def dev_eui(council_id: str, device_id: str) -> str:
    """A LoRaWAN DevEUI (16 lower-case hex digits) for a simulated device."""
    return hashlib.blake2b(f"{council_id}/{device_id}".encode(), digest_size=8).hexdigest()


def rng(*parts: object) -> random.Random:
    """A generator of its own for one purpose: adding a device or an event never shifts another
    device's numbers. (String seeds are hashed with SHA-512: stable across runs and versions.)"""
    return random.Random("/".join(str(p) for p in parts))


def uuid_from(r: random.Random) -> uuid.UUID:
    """A version-4 UUID drawn from ``r`` (deterministic under a seed)."""
    return uuid.UUID(int=r.getrandbits(128), version=4)


def name_uuid(*parts: object) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, "placewatch-sim:" + "/".join(str(p) for p in parts))
