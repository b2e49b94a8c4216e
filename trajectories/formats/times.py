"""ISO 8601 timestamps, parsed once per import worker however many times they are looked at.

An importer checks a step's timestamps where it reads them (to point at the event that holds a
bad one); the import parses them again to store them. Both go through `parse_iso`, whose cache
holds the most recent values, so each is parsed once.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime


@functools.lru_cache(maxsize=4096)
def parse_iso(value: str) -> datetime | None:
    """The moment `value` names (UTC when it names no offset), or None when it is not ISO 8601."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
