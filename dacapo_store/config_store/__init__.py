"""Config stores: the typed ConfigStore over a files or MongoDB backend."""

from __future__ import annotations

from ..options import Options
from .base import ConfigStore
from .documents import KINDS, DocumentMetadata
from .files import FileConfigStore
from .mongo import MongoConfigStore


def create_config_store(options: Options | None = None) -> ConfigStore:
    """The config store the options name: files under `runs_base_dir/configs`, or MongoDB."""
    options = options or Options.instance()
    if options.type == "mongo":
        return MongoConfigStore(
            options.mongo_db_host,
            options.mongo_db_name or "dacapo",
            timeout=options.server_selection_timeout,
            dialect=options.dacapo_dialect,
        )
    return FileConfigStore(options.configs_dir, dialect=options.dacapo_dialect)


__all__ = [
    "KINDS",
    "ConfigStore",
    "DocumentMetadata",
    "FileConfigStore",
    "MongoConfigStore",
    "create_config_store",
]
