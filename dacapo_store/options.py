"""Where the stores are: the options file, then environment variables, then overrides."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

import attrs
import yaml

log = logging.getLogger(__name__)

ENV_VARS = {
    "type": "DACAPO_STORE_TYPE",
    "runs_base_dir": "DACAPO_RUNS_BASE_DIR",
    "mongo_db_host": "DACAPO_MONGO_DB_HOST",
    "mongo_db_name": "DACAPO_MONGO_DB_NAME",
    "weights_store": "DACAPO_WEIGHTS_STORE",
}


def options_file_candidates() -> list[Path]:
    """DaCapo's search order for the options file."""
    found = []
    if os.environ.get("DACAPO_OPTIONS_FILE"):
        found.append(Path(os.environ["DACAPO_OPTIONS_FILE"]).expanduser())
    found += [
        Path.cwd() / "dacapo.yaml",
        Path.home() / "dacapo.yaml",
        Path.home() / ".config" / "dacapo" / "dacapo.yaml",
    ]
    return found


@attrs.frozen
class Options:
    """Where configs and weights live. Build with `Options.instance(**overrides)`."""

    type: Literal["files", "mongo"] = "files"
    runs_base_dir: Path = attrs.field(default=Path("~/dacapo"), converter=lambda p: Path(p).expanduser())
    mongo_db_host: str | None = None
    mongo_db_name: str | None = "dacapo"
    #: `files` (under runs_base_dir) or `gridfs` (in the MongoDB database); default follows `type`.
    weights_store: Literal["files", "gridfs"] | None = None
    #: Seconds to wait for a MongoDB server before StoreConnectionError.
    server_selection_timeout: float = 5.0
    source: str | None = attrs.field(default=None, eq=False)

    @classmethod
    def instance(cls, **overrides: Any) -> Options:
        """Read the first options file found, then DACAPO_* variables, then `overrides`."""
        values: dict[str, Any] = {}
        source = None
        for candidate in options_file_candidates():
            if candidate.is_file():
                with open(candidate, encoding="utf-8") as f:
                    loaded = yaml.safe_load(f) or {}
                if not isinstance(loaded, dict):
                    raise ValueError(
                        f"options file {candidate} must hold a mapping, got {type(loaded).__name__}"
                    )
                values.update(loaded)
                source = str(candidate)
                break
        for key, var in ENV_VARS.items():
            if os.environ.get(var):
                values[key] = os.environ[var]
        values.update({k: v for k, v in overrides.items() if v is not None})
        known = {a.name for a in attrs.fields(cls)} - {"source"}
        unknown = sorted(set(values) - known)
        if unknown:
            log.warning("ignoring unknown option(s) %s", ", ".join(unknown))
        values = {k: v for k, v in values.items() if k in known}
        if "server_selection_timeout" in values:
            values["server_selection_timeout"] = float(values["server_selection_timeout"])
        options = cls(**values, source=source)
        if options.type not in ("files", "mongo"):
            raise ValueError(f"option type must be 'files' or 'mongo', got {options.type!r}")
        if options.weights_store not in (None, "files", "gridfs"):
            raise ValueError(
                f"option weights_store must be 'files' or 'gridfs', got {options.weights_store!r}"
            )
        if options.type == "mongo" and not options.mongo_db_host:
            raise ValueError("option type is 'mongo' but mongo_db_host (DACAPO_MONGO_DB_HOST) is not set")
        return options

    @property
    def configs_dir(self) -> Path:
        """The folder of the files config store: `<runs_base_dir>/configs`."""
        return self.runs_base_dir / "configs"

    @property
    def weights_backend(self) -> str:
        """`files` or `gridfs`: the explicit choice, else files (DaCapo keeps weights on disk)."""
        return self.weights_store or "files"
