"""The per-user cache: derived data kept outside every registry, so reading writes nothing there.

`$XDG_CACHE_HOME/dacapo_store/` (default `~/.cache/dacapo_store/`). Whatever is kept here
is validated against its source on use and can be deleted at any time.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path


def cache_dir() -> Path:
    """`$XDG_CACHE_HOME/dacapo_store`, or `~/.cache/dacapo_store`."""
    base = os.environ.get("XDG_CACHE_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "dacapo_store"


def cache_file(section: str, source: Path, suffix: str = ".json", *, also: Sequence[Path] = ()) -> Path:
    """The cache file of `section` for the folder `source` (and those in `also`), keyed by their
    resolved paths."""
    text = "\0".join(str(path.resolve()) for path in (source, *also))
    key = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return cache_dir() / section / f"{key}{suffix}"
