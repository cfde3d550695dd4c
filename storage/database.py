"""Connections, and creating the database on first use so a fresh machine needs no manual step."""

from __future__ import annotations

import logging

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

log = logging.getLogger(__name__)


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(url, autocommit=autocommit, application_name="placewatch")


def ensure_database(url: str) -> bool:
    """Create the database named in ``url`` if it does not exist. Returns True if it created it."""
    try:
        connect(url).close()
        return False
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise
    params = conninfo_to_dict(url)
    name = str(params.get("dbname"))
    with connect(make_conninfo(url, dbname="postgres"), autocommit=True) as conn:
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:
            return False  # created concurrently by another process
    log.info("created database %s", name)
    return True
