"""Connecting to MongoDB once, with an explicit timeout and errors that never show a password."""

from __future__ import annotations

import logging
import re
from typing import Any

from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import ConfigurationError, OperationFailure, PyMongoError

from .errors import StoreConnectionError

log = logging.getLogger(__name__)

_CREDENTIALS = re.compile(r"(?<=://)[^@/]*@")


def redact(uri: str) -> str:
    """The URI with any `user:password@` replaced, for messages and logs."""
    return _CREDENTIALS.sub("***@", uri)


def describe(db_host: str | None, db_name: str) -> str:
    """How a MongoDB store names itself in messages: its URI without the password."""
    return f"mongodb:{redact(db_host)}/{db_name}" if db_host else f"mongodb:<client>/{db_name}"


def connect(
    db_host: str | None,
    db_name: str,
    *,
    client: Any = None,
    timeout: float = 5.0,
) -> tuple[Any, Database]:
    """Return (client, database), pinging a new client so an unreachable server fails now.

    A ready `client` (pymongo or mongomock) is used as is. A URI gets a client with
    `serverSelectionTimeoutMS` from `timeout`; auth and TLS options come through the URI.
    """
    if not isinstance(db_name, str) or not db_name:
        raise ValueError(f"db_name must be a non-empty str, got {db_name!r}")
    if client is None:
        if not db_host:
            raise ValueError("give a MongoDB URI (db_host) or a ready client")
        where = redact(db_host)
        try:
            # Timeouts written in the URI win over the option, as in pymongo itself.
            given = db_host.lower()
            timeouts = {
                key: int(timeout * 1000)
                for key in ("serverSelectionTimeoutMS", "connectTimeoutMS")
                if key.lower() not in given
            }
            client = MongoClient(db_host, **timeouts)
            client.admin.command("ping")
        except (ConfigurationError, ValueError) as exc:
            raise StoreConnectionError(f"bad MongoDB URI {where}: {_clean(exc, db_host)}") from None
        except OperationFailure as exc:
            raise StoreConnectionError(f"MongoDB at {where} refused us: {_clean(exc, db_host)}") from None
        except PyMongoError as exc:
            raise StoreConnectionError(
                f"can't reach MongoDB at {where} within {timeout:g} s "
                f"({type(exc).__name__}); is the server up and the URI right?"
            ) from None
        log.debug("connected to MongoDB at %s", where)
    return client, client[db_name]


def _clean(exc: Exception, uri: str) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return redact(text.replace(uri, redact(uri)))


def translate_errors(where: str):
    """Context manager turning pymongo connection failures mid-operation into StoreConnectionError."""
    from contextlib import contextmanager

    from pymongo.errors import AutoReconnect, ServerSelectionTimeoutError

    @contextmanager
    def guard():
        try:
            yield
        except (ServerSelectionTimeoutError, AutoReconnect) as exc:
            raise StoreConnectionError(f"lost MongoDB at {where} ({type(exc).__name__})") from None

    return guard()
