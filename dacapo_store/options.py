"""Where the stores are: the options file, then environment variables, then overrides."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

import attrs
import yaml

from .errors import OptionsError

log = logging.getLogger(__name__)

ENV_VARS = {
    "type": "DACAPO_STORE_TYPE",
    "runs_base_dir": "DACAPO_RUNS_BASE_DIR",
    "mongo_db_host": "DACAPO_MONGO_DB_HOST",
    "mongo_db_name": "DACAPO_MONGO_DB_NAME",
    "weights_store": "DACAPO_WEIGHTS_STORE",
}


def options_file_candidates() -> list[Path]:
    """DaCapo's search order for the options file. A file named by $DACAPO_OPTIONS_FILE must exist:
    a typo there would otherwise read another file, or none, without a word."""
    found = []
    if os.environ.get("DACAPO_OPTIONS_FILE"):
        named = Path(os.environ["DACAPO_OPTIONS_FILE"]).expanduser()
        if not named.is_file():
            what = "is not a file" if named.exists() else "does not exist"
            raise OptionsError(f"DACAPO_OPTIONS_FILE names {named}, which {what}; fix or unset it")
        found.append(named)
    found += [
        Path.cwd() / "dacapo.yaml",
        Path.home() / "dacapo.yaml",
        Path.home() / ".config" / "dacapo" / "dacapo.yaml",
    ]
    return found


def _read_options_file(path: Path) -> dict[str, Any]:
    """The mapping in an options file; OptionsError naming the file, line and problem otherwise."""
    try:
        with open(path, encoding="utf-8") as f:
            loaded = yaml.safe_load(f) or {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise OptionsError(f"options file {path}{at}: {exc.problem or exc.context}") from None
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as exc:
        raise OptionsError(f"options file {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(loaded, dict):
        raise OptionsError(f"options file {path} must hold a mapping of options, got {type(loaded).__name__}")
    return loaded


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """A warning about the options, once per process (they are read by every store a command opens)."""
    if message not in _warned:
        _warned.add(message)
        log.warning("%s", message)


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
    #: The DaCapo dialect configs are written in, "0.3.5" or "main"; None: DaCapo main's if
    #: the registry holds main documents, else 0.3.5's.
    dacapo_dialect: str | None = None
    source: str | None = attrs.field(default=None, eq=False)

    @classmethod
    def instance(cls, **overrides: Any) -> Options:
        """Read the first options file found, then DACAPO_* variables, then `overrides`."""
        values: dict[str, Any] = {}
        source = None
        for candidate in options_file_candidates():
            if candidate.is_file():
                loaded = _read_options_file(candidate)
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
            _warn_once(
                f"ignoring unknown option(s) {', '.join(unknown)}" + (f" in {source}" if source else "")
            )
        values = {k: v for k, v in values.items() if k in known}
        where = f" (in {source})" if source else ""
        for key, value in values.items():
            if key == "server_selection_timeout":
                if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                    raise OptionsError(f"option {key} must be a number of seconds, got {value!r}{where}")
                try:
                    values[key] = float(value)
                except ValueError:
                    raise OptionsError(
                        f"option {key} must be a number of seconds, got {value!r}{where}"
                    ) from None
            elif not isinstance(value, (str, os.PathLike)):
                raise OptionsError(f"option {key} must be a string, got {value!r}{where}")
        options = cls(**values, source=source)
        if options.type not in ("files", "mongo"):
            raise OptionsError(f"option type must be 'files' or 'mongo', got {options.type!r}{where}")
        if options.weights_store not in (None, "files", "gridfs"):
            raise OptionsError(
                f"option weights_store must be 'files' or 'gridfs', got {options.weights_store!r}{where}"
            )
        if options.dacapo_dialect not in (None, "0.3.5", "main"):
            raise OptionsError(
                f"option dacapo_dialect must be '0.3.5' or 'main', got {options.dacapo_dialect!r}{where}"
            )
        if options.type == "mongo" and not options.mongo_db_host:
            raise OptionsError(
                "option type is 'mongo' but mongo_db_host (DACAPO_MONGO_DB_HOST) is not set" + where
            )
        return options

    @property
    def configs_dir(self) -> Path:
        """The folder of the files config store: `<runs_base_dir>/configs`."""
        return self.runs_base_dir / "configs"

    @property
    def weights_backend(self) -> str:
        """`files` or `gridfs`: the explicit choice, else files (DaCapo keeps weights on disk)."""
        return self.weights_store or "files"
