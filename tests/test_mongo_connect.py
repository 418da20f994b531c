"""Connecting to MongoDB: passwords never shown, the cause of a failure said, refused fails fast,
one client per URI per process, and every store closes what it opened."""

from __future__ import annotations

import logging
import socket
import time

import mongomock.gridfs
import pytest
import torch
from click.testing import CliRunner
from conftest import MONGO_URI, no_options
from pymongo.errors import OperationFailure, ServerSelectionTimeoutError

from dacapo_store import StoreConnectionError
from dacapo_store.cli import app
from dacapo_store.config_store import MongoConfigStore
from dacapo_store.configs import StartConfig
from dacapo_store.mongo import RedactingFilter, redact, shared_clients
from dacapo_store.start import Start
from dacapo_store.weights import GridFSWeightsStore, LocalWeightsStore

mongomock.gridfs.enable_gridfs_integration()

SECRETS = ["p@ssw0rd", "p%40ssw0rd", "ssw0rd", "se/cret", "se%2Fcret", "cret", "kfpass", "TOKEN123", "lab:"]


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} shown in {text!r}"


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("mongodb://lab:p@ssw0rd@host:27017/db", "mongodb://***@host:27017/db"),
        ("mongodb://lab:se/cret@h1:1,h2:2/?replicaSet=rs", "mongodb://***@h1:1,h2:2/?replicaSet=rs"),
        (
            "mongodb://h/?tls=true&tlsCertificateKeyFilePassword=kfpass&appName=x",
            "mongodb://h/?tls=true&tlsCertificateKeyFilePassword=***&appName=x",
        ),
        (
            "mongodb+srv://lab:p@ssw0rd@c.example.org/?authMechanism=MONGODB-AWS"
            "&authMechanismProperties=AWS_SESSION_TOKEN:TOKEN123",
            "mongodb+srv://***@c.example.org/?authMechanism=MONGODB-AWS&authMechanismProperties=***",
        ),
        ("mongodb://127.0.0.1:27017/db", "mongodb://127.0.0.1:27017/db"),
    ],
)
def test_redact_removes_credentials_and_secret_options(uri, shown):
    assert redact(f"can't use {uri} now") == f"can't use {shown} now"


def test_redact_removes_secrets_in_the_form_pymongo_errors_print_options():
    text = (
        "{'tlscertificatekeyfilepassword': 'kfpass', "
        "'authmechanismproperties': {'AWS_SESSION_TOKEN': 'TOKEN123'}}"
    )
    assert_no_secret(redact(text))


def test_log_lines_are_redacted_by_the_filter(caplog):
    logger = logging.getLogger("test_redaction")
    caplog.handler.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="test_redaction"):
        logger.info("connecting to %s", "mongodb://lab:p@ssw0rd@host/?tlsCertificateKeyFilePassword=kfpass")
    assert "mongodb://***@host/" in caplog.text
    assert_no_secret(caplog.text)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("password", ["p@ssw0rd", "se/cret"])
def test_an_unescaped_password_is_a_bad_uri_shown_without_it(password):
    with pytest.raises(StoreConnectionError, match=r"bad MongoDB URI mongodb://\*\*\*@127\.0\.0\.1") as info:
        MongoConfigStore(f"mongodb://lab:{password}@127.0.0.1:{free_port()}/", "reg")
    assert_no_secret(str(info.value))


def test_a_refused_connection_fails_fast_saying_so_without_secrets():
    uri = f"mongodb://lab:p%40ssw0rd@127.0.0.1:{free_port()}/?tlsCertificateKeyFilePassword=kfpass"
    started = time.monotonic()
    with pytest.raises(StoreConnectionError) as info:
        MongoConfigStore(uri, "reg", timeout=20)
    assert time.monotonic() - started < 5  # not the 20 s selection timeout
    assert "connection refused by 127.0.0.1:" in str(info.value)
    assert_no_secret(str(info.value))


def test_a_host_name_that_does_not_resolve_fails_fast_saying_so():
    started = time.monotonic()
    with pytest.raises(StoreConnectionError, match=r"host name nohost\.invalid not resolved") as info:
        GridFSWeightsStore("mongodb://lab:se%2Fcret@nohost.invalid:27017/", "reg", timeout=20)
    assert time.monotonic() - started < 5
    assert_no_secret(str(info.value))


def test_the_timeout_named_is_the_effective_one_from_the_uri():
    with socket.socket() as silent:  # accepts connections (in its backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(StoreConnectionError) as info:
            MongoConfigStore(f"mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=400", "reg", timeout=30)
        assert time.monotonic() - started < 10
    assert "within 0.4 s" in str(info.value)


class FailingClient:
    """A pymongo stand-in whose ping fails as pymongo's does for a given cause."""

    error: Exception

    def __init__(self, *args, **kwargs):
        self.admin = self

    def command(self, *args, **kwargs):
        raise self.error

    def close(self):
        pass


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (
            ServerSelectionTimeoutError(
                "db.example.org:27017: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
                "self-signed certificate in certificate chain (_ssl.c:1006) (configured timeouts: ...)"
            ),
            "TLS certificate verification failed (self-signed certificate in certificate chain",
        ),
        (
            ServerSelectionTimeoutError("db.example.org:27017: [Errno -2] Name or service not known"),
            "host name not resolved",
        ),
        (OperationFailure("Authentication failed.", 18), "authentication failed"),
    ],
)
def test_the_cause_of_a_failed_connection_is_in_the_one_line_message(monkeypatch, error, cause):
    monkeypatch.setattr("dacapo_store.mongo.MongoClient", type("C", (FailingClient,), {"error": error}))
    with pytest.raises(StoreConnectionError) as info:
        MongoConfigStore("mongodb://lab:p%40ssw0rd@db.example.org:27017/?tls=true", "reg")
    message = str(info.value)
    assert cause in message and "\n" not in message
    assert_no_secret(message)


def test_the_cli_shows_neither_password_nor_secret_options_even_with_debug(tmp_path, monkeypatch):
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(no_options(tmp_path)))
    uri = f"mongodb://lab:p%40ssw0rd@127.0.0.1:{free_port()}/?tlsCertificateKeyFilePassword=kfpass"
    for debug in ([], ["--debug"]):
        result = CliRunner().invoke(app, ["--store", uri, *debug, "list", "runs"])
        assert result.exit_code == 2, result.output
        assert "connection refused" in result.stderr
        assert_no_secret(result.output)
    assert "Traceback" in result.stderr  # the --debug run


# -- one client per URI, closed with its last store ----------------------------------------------


@pytest.fixture
def mongo_uri(mongo_server, monkeypatch, tmp_path):
    """A URI of the mongo_server (the double's via a patched MongoClient), options pointing at it."""
    created = []
    if mongo_server.kind == "strict":
        uri = "mongodb://lab:p%40ssw0rd@strict-double:27017/"

        def client(*args, **kwargs):
            created.append(mongo_server.client())
            return created[-1]

        monkeypatch.setattr("dacapo_store.mongo.MongoClient", client)
    else:
        uri = MONGO_URI
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(no_options(tmp_path)))
    monkeypatch.setenv("DACAPO_STORE_TYPE", "mongo")
    monkeypatch.setenv("DACAPO_MONGO_DB_HOST", uri)
    monkeypatch.setenv("DACAPO_MONGO_DB_NAME", mongo_server.db_name)
    yield uri, created
    assert shared_clients() == []


def test_stores_of_one_uri_share_one_client_closed_with_the_last(mongo_uri, mongo_server):
    uri, created = mongo_uri
    configs = MongoConfigStore(uri, mongo_server.db_name)
    weights = GridFSWeightsStore(uri, mongo_server.db_name)
    assert configs.client is weights.client
    assert len(shared_clients()) == 1
    configs.close()
    configs.close()  # twice is fine
    weights.store_weights("run", 1, {"w": torch.ones(2)})
    weights.close()
    assert shared_clients() == []
    assert all(c.closed for c in created)


def test_prune_without_a_config_store_closes_the_one_it_opens(mongo_uri, mongo_server, tmp_path):
    _, created = mongo_uri
    store = LocalWeightsStore(tmp_path / "runs")
    for iteration in (1, 2, 3):
        store.store_weights("run", iteration, {"w": torch.ones(2)})
    for _ in range(3):
        store.prune("run", keep_last=1)
    assert store.iterations("run") == [3]
    assert shared_clients() == []
    assert all(c.closed for c in created)


def test_start_closes_the_weights_store_it_opened(mongo_uri, mongo_server, monkeypatch):
    uri, created = mongo_uri
    monkeypatch.setenv("DACAPO_WEIGHTS_STORE", "gridfs")
    with GridFSWeightsStore(uri, mongo_server.db_name) as weights:
        weights.store_weights("source", 5, {"weight": torch.ones(2, 2)})
    model = torch.nn.Linear(2, 2, bias=False)
    report = Start(StartConfig("source", "latest")).initialize_weights(model)
    assert report.iteration == 5 and torch.equal(model.weight.detach(), torch.ones(2, 2))
    assert Start(StartConfig("source", "latest")).iteration() == 5
    assert shared_clients() == []
    assert all(c.closed for c in created)
