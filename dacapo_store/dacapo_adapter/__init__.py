"""DaCapo 0.3.5 writing through dacapo_store: `install()` and `uninstall()`.

    from dacapo_store.dacapo_adapter import install; install()

makes DaCapo's store factories (`create_config_store`, `create_weights_store`,
`create_stats_store` of `dacapo.store.create_store`) hand out stores with DaCapo's own
interfaces (`stores.py`) over the registry dacapo_store's options name (`dacapo.yaml`,
`DACAPO_*` variables: files or MongoDB). Every DaCapo module that imported a factory by name
(`dacapo.train`, `dacapo.validate`, `dacapo.apply`, `dacapo.predict`, ...) is found by scanning
`sys.modules` for the factory objects, and gets ours; modules imported later take ours from
`dacapo.store.create_store`. `create_array_store` stays DaCapo's. `uninstall()` puts DaCapo's
back everywhere. DaCapo is imported only here, when `install()` runs; nothing else of
dacapo_store needs it.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

from ..errors import UnsupportedDacapoError
from ..options import Options

log = logging.getLogger(__name__)

#: The DaCapo release the adapter speaks to (its store interfaces and documents).
SUPPORTED_DACAPO = "0.3.5"
#: DaCapo's store factories the adapter replaces (`create_array_store` stays DaCapo's).
FACTORIES = ("create_config_store", "create_weights_store", "create_stats_store")

_lock = threading.RLock()
#: While installed: factory name -> (DaCapo's factory, ours).
_installed: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {}


def dacapo_version() -> str:
    """The version of the DaCapo this Python imports; UnsupportedDacapoError if it is not 0.3.5.

    DaCapo's unreleased main branch also says `__version__ = "0.3.5"`, so the installed
    distribution's version (`dacapo-ml`) decides, and without one DaCapo's classes do.
    """
    try:
        import dacapo
    except ImportError as exc:
        raise UnsupportedDacapoError(
            f"DaCapo is not installed in this Python ({sys.executable}): {exc}; the adapter needs "
            f"DaCapo {SUPPORTED_DACAPO} (pip install dacapo-ml=={SUPPORTED_DACAPO})"
        ) from None
    except Exception as exc:  # DaCapo's own imports failing (a missing or broken dependency)
        raise UnsupportedDacapoError(
            f"DaCapo is installed in this Python ({sys.executable}) but fails to import: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("dacapo-ml")
    except PackageNotFoundError:  # a source checkout on the path: tell 0.3.5 from main by its classes
        import attrs
        from dacapo.experiments import RunConfig

        main = "batch_size" in attrs.fields_dict(RunConfig)
        found = "main (a source checkout)" if main else getattr(dacapo, "__version__", "?")
    if found != SUPPORTED_DACAPO:
        raise UnsupportedDacapoError(
            f"the DaCapo adapter supports DaCapo {SUPPORTED_DACAPO}; this Python ({sys.executable}) has "
            f"DaCapo {found} at {getattr(dacapo, '__file__', '?')}"
        )
    return found


def install(options: Options | None = None) -> None:
    """Make DaCapo's store factories hand out dacapo_store-backed stores, in every DaCapo module.

    `options`: the registry to use; by default the options are read at each factory call, as
    DaCapo reads its own. Installing again replaces the options. Raises UnsupportedDacapoError
    (nothing patched) if DaCapo is missing or not 0.3.5.
    """
    with _lock:
        dacapo_version()
        import dacapo.store.create_store as create_store

        from . import stores

        if _installed:
            _restore()
        ours = _factories(stores, options)
        originals = {name: getattr(create_store, name) for name in FACTORIES}
        _installed.update({name: (originals[name], ours[name]) for name in FACTORIES})
        swapped = _swap({id(f): (f, ours[n]) for n, f in originals.items()})
        log.info(
            "DaCapo's stores now write through dacapo_store (%d bindings in %d modules)",
            len(swapped),
            len({m for m, _ in swapped}),
        )


def uninstall() -> None:
    """Give DaCapo its own store factories back, wherever ours were bound; nothing if not installed."""
    with _lock:
        if _installed:
            _restore()


def installed() -> bool:
    """Whether `install()` is in effect."""
    return bool(_installed)


def _restore() -> None:
    _swap({id(ours): (ours, original) for original, ours in _installed.values()})
    _installed.clear()


def _swap(replace: dict[int, tuple[Any, Any]]) -> list[tuple[str, str]]:
    """Rebind, in every loaded module, each name bound to one of the `replace` objects; return
    the (module, name) pairs changed."""
    changed = []
    for module_name, module in list(sys.modules.items()):
        try:
            namespace = vars(module)
        except TypeError:
            continue
        for attr, value in list(namespace.items()):
            pair = replace.get(id(value))
            if pair is not None and value is pair[0]:
                setattr(module, attr, pair[1])
                changed.append((module_name, attr))
    return changed


def _factories(stores: Any, options: Options | None) -> dict[str, Callable[[], Any]]:
    """Our three factories, taking no arguments as DaCapo's do."""

    def current() -> Options:
        return options if options is not None else Options.instance()

    def create_config_store() -> Any:
        """A dacapo_store-backed DaCapo ConfigStore for the registry the options name."""
        from ..config_store import create_config_store as ours

        return stores.DacapoConfigStore(ours(current()))

    def create_weights_store() -> Any:
        """A dacapo_store-backed DaCapo WeightsStore for the registry the options name."""
        from ..weights import create_weights_store as ours

        chosen = current()
        return stores.DacapoWeightsStore(ours(chosen), chosen.runs_base_dir)

    def create_stats_store() -> Any:
        """A dacapo_store-backed DaCapo StatsStore for the registry the options name."""
        from ..weights import create_weights_store as ours

        return stores.DacapoStatsStore(ours(current()))

    made = {
        "create_config_store": create_config_store,
        "create_weights_store": create_weights_store,
        "create_stats_store": create_stats_store,
    }
    for name, fn in made.items():
        fn.__module__ = __name__
        fn.__qualname__ = name
    return made


__all__ = [
    "FACTORIES",
    "SUPPORTED_DACAPO",
    "UnsupportedDacapoError",
    "dacapo_version",
    "install",
    "installed",
    "uninstall",
]
