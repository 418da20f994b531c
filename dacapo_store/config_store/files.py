"""FileConfigStore: `<path>/<collection>/<name>.yaml`, DaCapo's `runs_base_dir/configs` folder."""

from __future__ import annotations

import errno
import json
import logging
import os
import secrets
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import filelock
import yaml

from ..cache import cache_file
from ..checksums import seal_record
from ..configs import RunConfig
from ..errors import ConfigValidationError
from ..fsutil import RACY_NS, fsync_dir, read_small, temp_files, write_temp
from ..names import RESERVED_RUN_NAMES
from ..weights.backend import Leftover
from . import yamlio
from .base import ConfigStore
from .dialects import document_dialect
from .documents import KINDS, check_kind, run_references

log = logging.getLogger(__name__)

SUFFIX = ".yaml"
#: Our own bookkeeping lives beside the collections, where DaCapo never looks:
#: `<configs>/.dacapo_store/metadata/<kind>/<name>.json`, written only when we store.
PRIVATE_DIR = ".dacapo_store"
META_SUFFIX = ".json"


def _meta_bytes(meta: dict[str, Any]) -> bytes:
    return json.dumps(seal_record(meta), sort_keys=True).encode()


class FileConfigStore(ConfigStore):
    """Config documents as YAML files, one folder per kind, safe under many writers.

    A document is created by writing a temporary file in the same folder, fsyncing it and
    hard-linking it into place: the link fails if the name exists, so "create if absent"
    is atomic across processes and no reader ever sees half a file. Who stored a document
    and when goes into a small JSON file under `.dacapo_store/metadata/`, never into the
    document. Run filters use a small index of each run file's references, validated
    against the files' stat on every query (so files written by DaCapo or by hand are seen
    too) and kept in the per-user cache, outside the folder: reading writes nothing here.
    """

    reserved_run_names = RESERVED_RUN_NAMES

    def __init__(self, path: str | os.PathLike[str], *, dialect: str | None = None) -> None:
        self.path = Path(path).expanduser()
        self._set_dialect_option(dialect)
        self._index: dict[str, Any] | None = None
        self._index_sig: tuple[int, int, int] | None = None

    def describe(self) -> str:
        return f"files:{self.path}"

    def __repr__(self) -> str:
        return f"FileConfigStore({str(self.path)!r})"

    # -- primitives ---------------------------------------------------------------------------

    def _file(self, kind: str, name: str) -> Path:
        return self.path / kind / f"{name}{SUFFIX}"

    def _read(self, file: Path) -> dict[str, Any] | None:
        try:
            text = read_small(str(file)).decode("utf-8")
        except FileNotFoundError:
            return None
        try:
            doc = yamlio.load(text)
        except (yaml.YAMLError, ValueError) as exc:
            python_tag = yamlio.python_tag(exc)
            if python_tag is not None:
                raise ConfigValidationError(
                    f"{file}: holds the Python tag {python_tag} (DaCapo writes such tags when a config "
                    "holds a Python object, e.g. a torch module in a WrappedArchitectureConfig); refused, "
                    "nothing in it was run: store the module in a file and give its path"
                ) from None
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigValidationError(f"{file}: not a readable YAML document ({reason})") from exc
        if not isinstance(doc, dict):
            raise ConfigValidationError(f"{file}: expected a mapping, got {type(doc).__name__}")
        return doc

    def _find(self, kind: str, name: str) -> dict[str, Any] | None:
        return self._read(self._file(kind, name))

    def _insert(self, kind: str, name: str, doc: dict[str, Any]) -> dict[str, Any] | None:
        target = self._file(kind, name)
        if self._create(target, yamlio.dump(doc).encode()):
            return None
        return self._read(target) or self._insert(kind, name, doc)

    def _create(self, target: Path, data: bytes) -> bool:
        """Write `target` whole if it does not exist (True), atomically across processes; False if
        it exists. A temporary file is fsynced and hard-linked into place (the link fails if the
        name exists); where there are no hard links, a lock makes check-and-rename atomic."""
        folder = target.parent
        folder.mkdir(parents=True, exist_ok=True)
        tmp = write_temp(folder, target.name, [data])
        try:
            try:
                os.link(tmp, target)
            except FileExistsError:
                return False
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                    raise
                # one lock per folder, under our own folder: a name of 250 bytes still fits
                lock = self.path / PRIVATE_DIR / "locks" / f"{folder.name}.lock"
                lock.parent.mkdir(parents=True, exist_ok=True)
                with filelock.FileLock(str(lock)):
                    if target.exists():
                        return False
                    os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(folder)
        return True

    def _replace(self, kind: str, name: str, old: dict[str, Any], new: dict[str, Any]) -> bool:
        target = self._file(kind, name)
        if self._read(target) != old:
            return False
        tmp = write_temp(target.parent, target.name, [yamlio.dump(new).encode()])
        try:
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(target.parent)
        return True

    # -- metadata beside the documents -------------------------------------------------------

    def _meta_file(self, kind: str, name: str) -> Path:
        return self.path / PRIVATE_DIR / "metadata" / kind / f"{name}{META_SUFFIX}"

    @staticmethod
    def _read_meta(file: Path) -> dict[str, Any] | Exception | None:
        """The record in a metadata file; an unreadable one as its error (for `check` to report)."""
        try:
            meta = json.loads(read_small(str(file)))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            return ValueError(f"{file}: {exc}")
        return meta if isinstance(meta, dict) else ValueError(f"{file}: not a JSON object")

    def _get_meta(self, kind: str, name: str) -> dict[str, Any] | Exception | None:
        return self._read_meta(self._meta_file(kind, name))

    def _all_meta(self, kind: str) -> dict[str, dict[str, Any] | Exception]:
        folder = self.path / PRIVATE_DIR / "metadata" / kind
        try:
            entries = os.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            return {}
        out = {}
        for entry in entries:
            if entry.endswith(META_SUFFIX) and not entry.startswith("."):
                meta = self._read_meta(folder / entry)
                if meta is not None:
                    out[entry[: -len(META_SUFFIX)]] = meta
        return out

    def _partial_leftovers(self, cutoff: float) -> list[Leftover]:
        """`.tmp-*` files (from `write_temp`) in every kind's folder and its metadata folder."""
        found = []
        for kind in KINDS:
            for folder in (self.path / kind, self.path / PRIVATE_DIR / "metadata" / kind):
                for path, st in temp_files(folder):
                    if st.st_mtime < cutoff:
                        name = str(Path(path).relative_to(self.path))
                        found.append(
                            Leftover("temporary file", None, name, st.st_size, st.st_mtime, key=path)
                        )
        return found

    def _remove_partial(self, leftover: Leftover) -> None:
        Path(leftover.key).unlink(missing_ok=True)

    def _put_meta(self, kind: str, name: str, meta: dict[str, Any]) -> None:
        file = self._meta_file(kind, name)
        file.parent.mkdir(parents=True, exist_ok=True)
        os.replace(write_temp(file.parent, file.name, [_meta_bytes(meta)]), file)
        fsync_dir(file.parent)

    def _claim_meta(self, kind: str, name: str, meta: dict[str, Any]) -> bool:
        return self._create(self._meta_file(kind, name), _meta_bytes(meta))

    def _unclaim_meta(self, kind: str, name: str, meta: dict[str, Any]) -> None:
        """Take the file aside (a rename), and put it back unless it is our claim: a record the
        document's writer put there meanwhile is never lost."""
        file = self._meta_file(kind, name)
        aside = file.with_name(f".tmp-{secrets.token_hex(6)}-unclaim{META_SUFFIX}")
        try:
            os.rename(file, aside)
        except FileNotFoundError:
            return
        try:
            if self._read_meta(aside) != seal_record(meta):
                try:
                    os.link(aside, file)
                except FileExistsError:
                    pass  # a newer record is there already
                except OSError:  # no hard links here
                    if not file.exists():
                        os.replace(aside, file)
        finally:
            aside.unlink(missing_ok=True)

    def _delete_meta(self, kind: str, name: str) -> None:
        self._meta_file(kind, name).unlink(missing_ok=True)

    def _holds_dialect(self, kind: str, dialect: str) -> bool:
        if kind == "runs":  # each run file's dialect is in the run index, read once per file
            return any(entry.get("dialect") == dialect for entry in self._run_index().values())
        return super()._holds_dialect(kind, dialect)

    def _delete(self, kind: str, name: str) -> bool:
        try:
            os.unlink(self._file(kind, name))
        except FileNotFoundError:
            return False
        fsync_dir(self.path / kind)
        return True

    def _names(self, kind: str, where: Mapping[str, list[str]] | None = None) -> list[str]:
        if where:
            index = self._run_index() if kind == "runs" else {}
            return sorted(
                name
                for name, entry in index.items()
                if entry["refs"] is not None and all(entry["refs"].get(f) in vs for f, vs in where.items())
            )
        try:
            entries = os.listdir(self.path / kind)
        except FileNotFoundError:
            return []
        return sorted(e[: -len(SUFFIX)] for e in entries if e.endswith(SUFFIX) and not e.startswith("."))

    def _documents(self, kind: str) -> Iterator[tuple[str, dict[str, Any] | Exception]]:
        for name in self._names(kind):
            try:
                doc = self._find(kind, name)
            except ConfigValidationError as exc:
                yield name, exc
                continue
            if doc is not None:
                yield name, doc

    # -- what changed: folders' and files' stats ----------------------------------------------

    def changes_since(
        self, token: Any, kind: str = "runs", *, thorough: bool = False
    ) -> tuple[Any, set[str] | None]:
        """Documents are created by a link or rename and removed by an unlink, never rewritten in
        place, and metadata files are renamed into place: unchanged folder mtimes mean nothing
        came, went or changed (two stats, not one per document). `thorough` stats every file
        anyway (a file server's cached times); either way only files whose stat moved are named.
        """
        check_kind(kind)
        racy_after = time.time_ns() - RACY_NS
        folder = self.path / kind
        meta_folder = self._meta_file(kind, "-").parent
        folder_sig = _folder_sig(folder, racy_after)
        meta_folder_sig = _folder_sig(meta_folder, racy_after)
        before = token if isinstance(token, FilesToken) and token.kind == kind else None
        if (
            before is not None
            and not thorough
            and folder_sig is not None
            and _settled(before.folder, folder_sig)
            and _settled(before.meta_folder, meta_folder_sig)
        ):
            return before, set()
        files = before.files if before is not None and _settled(before.folder, folder_sig) else None
        if files is None or thorough or before is None:
            files = _stats(folder, SUFFIX)
        metas = before.metas if before is not None and _settled(before.meta_folder, meta_folder_sig) else None
        if metas is None or thorough or before is None:
            metas = _stats(meta_folder, META_SUFFIX)
        new = FilesToken(kind, folder_sig, meta_folder_sig, files, {n: metas.get(n) for n in files})
        if before is None:
            return new, None
        changed = {n for n in files.keys() | before.files.keys() if files.get(n) != before.files.get(n)}
        changed |= {n for n in files if new.metas.get(n) != before.metas.get(n)}
        return new, changed

    # -- the run index: a cache of each run file's references, checked against stat ----------

    def _run_index(self) -> dict[str, Any]:
        folder = self.path / "runs"
        current: dict[str, list[int]] = {}
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    if entry.name.endswith(SUFFIX) and not entry.name.startswith("."):
                        st = entry.stat()
                        current[entry.name[: -len(SUFFIX)]] = [st.st_mtime_ns, st.st_size, st.st_ino]
        except FileNotFoundError:
            return {}
        index = self._load_index()
        changed = False
        for name in list(index):
            if name not in current:
                del index[name]
                changed = True
        for name, sig in current.items():
            entry = index.get(name)
            if entry is not None and entry["sig"] == sig and "dialect" in entry:
                continue
            dialect = None
            try:
                doc = self._read(folder / f"{name}{SUFFIX}")
                refs = run_references(doc) if doc is not None else None
                dialect = document_dialect(RunConfig, doc) if doc is not None else None
            except ConfigValidationError as exc:
                log.warning("run index: skipping %s", exc)
                refs = None
            index[name] = {"sig": sig, "refs": refs, "dialect": dialect}
            changed = True
        if changed:
            self._save_index(index)
        return index

    def _index_file(self) -> Path:
        # In the per-user cache, keyed by this folder's path: never inside the registry.
        return cache_file("runs-index", self.path)

    def _load_index(self) -> dict[str, Any]:
        file = self._index_file()
        try:
            st = file.stat()
        except OSError:  # absent, or its folder blocked: rebuild in memory
            if self._index_sig is None and self._index is not None:
                return self._index
            self._index, self._index_sig = None, None
            return {}
        sig = (st.st_mtime_ns, st.st_size, st.st_ino)
        if self._index is None or self._index_sig != sig:
            try:
                saved = json.loads(file.read_text(encoding="utf-8"))
                if saved.get("path") != str(self.path):
                    raise ValueError("made for another folder")
                self._index = saved["entries"]
            except (ValueError, KeyError, TypeError, AttributeError, OSError):
                log.warning("run index %s is unreadable; rebuilding it", file)
                self._index = {}
            self._index_sig = sig
        return self._index

    def _save_index(self, index: dict[str, Any]) -> None:
        # The index is a cache validated on every read: concurrent savers may race, the
        # last rename wins, and either result is correct for the files it saw.
        # Saving is best-effort: a read-only registry is still readable, just rescanned.
        folder = self._index_file().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            text = json.dumps({"version": 1, "path": str(self.path), "entries": index}).encode()
            os.replace(write_temp(folder, self._index_file().name, [text], fsync=False), self._index_file())
            st = self._index_file().stat()
        except OSError as exc:
            log.debug("run index not saved in %s: %s", folder, exc)
            self._index, self._index_sig = index, None
            return
        self._index, self._index_sig = index, (st.st_mtime_ns, st.st_size, st.st_ino)


@attrs.frozen
class FilesToken:
    """What `FileConfigStore.changes_since` saw: the folders' (mtime_ns or -1 if it was still
    changing, inode), and each document's and metadata file's (mtime_ns, size, inode)."""

    kind: str
    folder: tuple[int, int] | None
    meta_folder: tuple[int, int] | None
    files: Mapping[str, tuple[int, int, int]]
    metas: Mapping[str, tuple[int, int, int] | None]


def _folder_sig(folder: Path, racy_after: int) -> tuple[int, int] | None:
    """(mtime_ns, inode) of a folder; mtime -1 if it changed so recently that it may again unseen."""
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return (-1 if st.st_mtime_ns > racy_after else st.st_mtime_ns, st.st_ino)


def _settled(before: tuple[int, int] | None, now: tuple[int, int] | None) -> bool:
    return before == now and (now is None or now[0] != -1)


def _stats(folder: Path, suffix: str) -> dict[str, tuple[int, int, int]]:
    """name -> (mtime_ns, size, inode) of the files `<name><suffix>` in a folder."""
    out = {}
    try:
        with os.scandir(folder) as entries:
            for e in entries:
                if e.name.endswith(suffix) and not e.name.startswith("."):
                    try:
                        st = e.stat()
                    except OSError:
                        continue
                    out[e.name[: -len(suffix)]] = (st.st_mtime_ns, st.st_size, st.st_ino)
    except (FileNotFoundError, NotADirectoryError):
        pass
    return out


__all__ = ["FileConfigStore", "FilesToken"]
