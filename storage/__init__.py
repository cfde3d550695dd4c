"""Storage: schema migrations and database helpers shared by every stage."""

from storage.database import connect, ensure_database
from storage.migrate import Flavour, MigrationResult, migrate

__all__ = ["Flavour", "MigrationResult", "connect", "ensure_database", "migrate"]
