"""Connecting to MongoDB: one client per URI per process, primary reads, majority writes, no passwords shown.

- `connect` hands out one shared client per URI (and timeout) in a process; `release` gives it
  back and closes it when its last store is closed.
- `database` gives a store its database with read preference PRIMARY (reads the store's logic
  depends on never go to a lagging secondary, whatever the URI says) and write concern
  `w="majority"` with a `wtimeout`, so a write is durable on a replica set and never blocks forever.
- `redact` removes credentials and secret options from any text: messages, log lines, tracebacks.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, unquote

import pymongo
from pymongo import MongoClient, ReadPreference
from pymongo.database import Database
from pymongo.errors import (
    AutoReconnect,
    ConfigurationError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WTimeoutError,
)
from pymongo.write_concern import WriteConcern

from .errors import StoreConnectionError

log = logging.getLogger(__name__)

#: How long a write waits for a majority of the replica set to confirm it.
WRITE_TIMEOUT_MS = 30_000
#: Every database and collection of the stores reads from the primary and writes to a majority.
READ_PREFERENCE = ReadPreference.PRIMARY
WRITE_CONCERN = WriteConcern(w="majority", wtimeout=WRITE_TIMEOUT_MS)

# -- redaction ----------------------------------------------------------------------------------

_URI = re.compile(r"(?i)(mongodb(?:\+srv)?://)([^\s'\"<>]*)")
_SECRET_KEY = r"[\w.-]*(?:password|secret|token|pwd)[\w.-]*|authmechanismproperties"
_SECRET_OPTION = re.compile(rf"(?i)\b({_SECRET_KEY})(=)([^&\s'\"]*)")
_SECRET_VALUE = r"\{[^}]*\}|'[^']*'|\"[^\"]*\"|[^\s,}&]+"
_SECRET_ITEM = re.compile(rf"(?i)(['\"]?\b(?:{_SECRET_KEY})['\"]?\s*:\s*)({_SECRET_VALUE})")


def _redact_uri(match: re.Match[str]) -> str:
    scheme, rest = match.group(1), match.group(2)
    query = rest.find("?")
    head = rest if query < 0 else rest[:query]
    at = head.rfind("@")
    if at < 0 and "@" in rest:  # a password holding '?': its '@' comes before the first option
        equals = rest.find("=")
        at = rest.rfind("@", 0, equals if equals >= 0 else len(rest))
    if at >= 0:
        rest = "***@" + rest[at + 1 :]
    return scheme + rest


def redact(text: str) -> str:
    """`text` with every MongoDB URI's `user:password@` and every secret-like option value replaced.

    Everything between `//` and the last `@` before the host list goes (passwords may hold `@`,
    `/` or `:`), and so do the values of options such as `tlsCertificateKeyFilePassword=` or
    `authMechanismProperties=` (which may carry an `AWS_SESSION_TOKEN`), in URIs and in the
    `key: value` form error messages print them in.
    """
    if not text:
        return text
    text = _URI.sub(_redact_uri, text)
    text = _SECRET_OPTION.sub(r"\1\2***", text)
    return _SECRET_ITEM.sub(r"\1***", text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's final message (attach it to a handler)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def describe(db_host: str | None, db_name: str) -> str:
    """How a MongoDB store names itself in messages: its URI without the password."""
    return f"mongodb:{redact(db_host)}/{db_name}" if db_host else f"mongodb:<client>/{db_name}"


# -- connecting ----------------------------------------------------------------------------------


class _Shared:
    __slots__ = ("client", "users")

    def __init__(self, client: Any) -> None:
        self.client = client
        self.users = 1


_clients: dict[tuple[int, str, float], _Shared] = {}
_clients_lock = threading.Lock()


def connect(
    db_host: str | None,
    db_name: str,
    *,
    client: Any = None,
    timeout: float = 5.0,
) -> tuple[Any, Database]:
    """Return (client, database), the database with primary reads and majority writes.

    A ready `client` (pymongo or mongomock) is used as is and stays the caller's. A URI gets the
    process's client for that URI (pinged when first made, so an unreachable server fails now);
    give it back with `release(client)`. Timeouts written in the URI win over `timeout`.
    """
    if not isinstance(db_name, str) or not db_name:
        raise ValueError(f"db_name must be a non-empty str, got {db_name!r}")
    if client is None:
        if not db_host:
            raise ValueError("give a MongoDB URI (db_host) or a ready client")
        key = (os.getpid(), db_host, float(timeout))
        with _clients_lock:
            shared = _clients.get(key)
            if shared is not None:
                shared.users += 1
                client = shared.client
        if client is None:
            client = _new_client(db_host, timeout)
            with _clients_lock:
                shared = _clients.get(key)
                if shared is None:
                    _clients[key] = _Shared(client)
                else:  # another thread connected meanwhile: use its client
                    shared.users += 1
                    client.close()
                    client = shared.client
    return client, database(client, db_name)


def release(client: Any) -> None:
    """Give back a client from `connect`; the last user of a URI's client closes it."""
    with _clients_lock:
        for key, shared in list(_clients.items()):
            if shared.client is client:
                shared.users -= 1
                if shared.users > 0:
                    return
                del _clients[key]
                break
    client.close()


def shared_clients() -> list[str]:
    """The URIs (redacted) whose shared client is open in this process: empty once every store is closed."""
    with _clients_lock:
        return sorted(redact(uri) for pid, uri, _ in _clients if pid == os.getpid())


def database(client: Any, db_name: str) -> Database:
    """`client[db_name]` reading from the primary and writing to a majority (see the module)."""
    return client.get_database(db_name, read_preference=READ_PREFERENCE, write_concern=WRITE_CONCERN)


def collection(db: Database, name: str) -> Any:
    """`db[name]` with the stores' read preference and write concern (for databases we did not make)."""
    return db.get_collection(name, read_preference=READ_PREFERENCE, write_concern=WRITE_CONCERN)


def _uri_options(uri: str) -> dict[str, str]:
    query = uri.split("?", 1)[1] if "?" in uri.split("@")[-1] else ""
    return {k.lower(): v for k, v in parse_qsl(query, keep_blank_values=True)}


def effective_timeout(uri: str, timeout: float) -> float:
    """The server selection timeout in seconds a client of `uri` gets: the URI's, else `timeout`."""
    given = _uri_options(uri).get("serverselectiontimeoutms")
    try:
        return int(given) / 1000 if given is not None else timeout
    except ValueError:
        return timeout


def _seeds(uri: str) -> list[tuple[str, int]]:
    """The host:port pairs of a mongodb:// URI (none for mongodb+srv:// or a Unix socket)."""
    if not uri.lower().startswith("mongodb://"):
        return []
    rest = uri[len("mongodb://") :]
    hosts = rest.split("?", 1)[0]
    hosts = hosts[hosts.rfind("@") + 1 :].split("/", 1)[0]
    seeds = []
    for host in hosts.split(","):
        host = unquote(host)
        if not host or host.startswith("/") or host.endswith(".sock"):
            return []
        if host.startswith("["):
            name, _, port = host[1:].partition("]")
            port = port.lstrip(":")
        else:
            name, _, port = host.partition(":")
        try:
            seeds.append((name, int(port) if port else 27017))
        except ValueError:
            return []  # pymongo will say what is wrong with it
    return seeds


def _unreachable_seeds(uri: str, timeout: float) -> str | None:
    """Why no seed host can be reached, if each one fails at once (refused, or a name not resolved)."""
    seeds = _seeds(uri)
    causes = []
    for host, port in seeds:
        try:
            socket.create_connection((host, port), timeout=min(timeout, 2.0)).close()
            return None
        except ConnectionRefusedError:
            causes.append(f"connection refused by {host}:{port}")
        except socket.gaierror:
            causes.append(f"host name {host} not resolved")
        except OSError:
            return None  # slow or filtered: let the driver try for the whole timeout
    return "; ".join(causes) if causes else None


def _cause(exc: BaseException) -> str:
    """The reason a connection failed, in a few words, from a pymongo error."""
    text = str(exc)
    lowered = text.lower()
    if isinstance(exc, OperationFailure) and (exc.code == 18 or "authentication failed" in lowered):
        return "authentication failed (check the user, password and authSource)"
    if "certificate verify failed" in lowered:
        detail = re.search(r"certificate verify failed:?\s*([^(\],]*)", text, re.IGNORECASE)
        reason = detail.group(1).strip() if detail and detail.group(1).strip() else "untrusted certificate"
        return f"TLS certificate verification failed ({reason})"
    if "ssl" in lowered and ("handshake" in lowered or "wrong version" in lowered):
        return "TLS handshake failed (is TLS on at both ends?)"
    if any(s in lowered for s in ("name or service not known", "nodename nor servname", "getaddrinfo")) or (
        "temporary failure in name resolution" in lowered or "no address associated" in lowered
    ):
        return "host name not resolved"
    if "connection refused" in lowered:
        return "connection refused"
    if "timed out" in lowered:
        return "no answer (timed out)"
    first = text.split(" (configured timeouts")[0].splitlines()[0] if text else type(exc).__name__
    return first[:200]


def _new_client(db_host: str, timeout: float) -> Any:
    where = redact(db_host)
    effective = effective_timeout(db_host, timeout)
    try:
        given = db_host.lower()
        timeouts = {
            key: int(timeout * 1000)
            for key in ("serverSelectionTimeoutMS", "connectTimeoutMS")
            if key.lower() not in given
        }
        client = MongoClient(db_host, **timeouts)
    except (ConfigurationError, ValueError, TypeError) as exc:
        raise StoreConnectionError(f"bad MongoDB URI {where}: {redact(_first_line(exc))}") from None
    try:
        # pymongo retries a refused connection for the whole selection timeout: look first
        unreachable = (
            _unreachable_seeds(db_host, effective) if isinstance(client, pymongo.MongoClient) else None
        )
        if unreachable:
            raise StoreConnectionError(
                f"can't reach MongoDB at {where}: {unreachable}; is the server up and the URI right?"
            )
        client.admin.command("ping")
    except StoreConnectionError:
        client.close()
        raise
    except OperationFailure as exc:
        client.close()
        raise StoreConnectionError(f"MongoDB at {where} refused us: {redact(_cause(exc))}") from None
    except PyMongoError as exc:
        client.close()
        raise StoreConnectionError(
            f"can't reach MongoDB at {where} within {effective:g} s: {redact(_cause(exc))}; "
            "is the server up and the URI right?"
        ) from None
    log.debug("connected to MongoDB at %s", where)
    return client


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


@contextmanager
def translate_errors(where: str) -> Iterator[None]:
    """Turn pymongo's lost-connection and write-timeout errors mid-operation into StoreConnectionError."""
    try:
        yield
    except WTimeoutError:
        raise StoreConnectionError(
            f"a majority of the MongoDB replica set at {where} did not confirm a write within "
            f"{WRITE_TIMEOUT_MS / 1000:g} s (members down?); it may be applied on the primary only"
        ) from None
    except (ServerSelectionTimeoutError, AutoReconnect) as exc:
        raise StoreConnectionError(f"lost MongoDB at {where}: {redact(_cause(exc))}") from None
