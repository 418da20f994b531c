"""Who and when, as recorded with every stored config and checkpoint."""

from __future__ import annotations

import getpass
import socket
from datetime import datetime, timezone


def current_user() -> str:
    """`user@host` of this process."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def utc_now() -> str:
    """The current UTC time, ISO 8601 with milliseconds and offset."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
