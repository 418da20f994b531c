"""One function per page: it reads the request's parameters and returns the page's data.

The HTML page renders that data with a template; its JSON twin under /api/v1/ returns it as it
is (the Datasette pattern). Numbers come from `dacapo_store.queries`, never from the templates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from starlette.requests import Request

from ..config_store.dialects import document_dialect
from ..config_store.documents import KIND_CLASSES, KINDS, RUN_PARTS
from ..errors import ConfigNotFoundError, DacapoStoreError
from ..names import check_name
from ..queries import STATUSES, RunCatalog, RunQuery, compare_runs, run_detail
from ..queries.catalog import MAX_LIMIT, PART_FILTERS, SORT_KEYS
from ..queries.runs import check_run_names
from ..queries.uses import NESTED_KINDS
from ..weights.base import WeightsStore
from .params import BadRequest, NotFound, Params


@attrs.define
class Registry:
    """What every view reads: the two stores and the catalog of run summaries over them."""

    configs: Any
    weights: WeightsStore
    catalog: RunCatalog

    def describe(self) -> str:
        """The store's name for pages: never with a password (describe() redacts it)."""
        return self.configs.describe()


#: config kind -> the run filter that selects its runs (kinds a run names directly).
KIND_FILTER = {kind: field.removesuffix("_config") for field, kind in RUN_PARTS.items()}

RUN_PARAMS = (*PART_FILTERS, "name", "status", "sort", "order", "criterion", "dataset", "offset", "limit")


def _run_query(p: Params, registry: Registry, *, sort: str = "name", best_only: bool = False) -> RunQuery:
    criterion = p.criterion()
    dataset = p.name("dataset", "dataset name")
    known = registry.catalog.criteria()
    if criterion is not None and criterion not in known:
        raise NotFound(
            f"no run has scores for criterion {criterion!r}; known criteria: {', '.join(known) or 'none'}"
        )
    if dataset is not None:
        chosen = criterion or registry.catalog.default_criterion(None)
        if chosen is None or dataset not in known.get(chosen, []):
            raise NotFound(
                f"no run has {chosen!r} scores on dataset {dataset!r}; "
                f"it has them on: {', '.join(known.get(chosen or '', [])) or 'none'}"
            )
    try:
        return RunQuery(
            task=p.names("task", "task name"),
            architecture=p.names("architecture", "architecture name"),
            trainer=p.names("trainer", "trainer name"),
            datasplit=p.names("datasplit", "datasplit name"),
            name=p.string("name"),
            status=p.choices("status", STATUSES),
            sort=p.choice("sort", SORT_KEYS, sort) or sort,
            descending=p.choice("order", ("asc", "desc"), "asc") == "desc",
            criterion=criterion,
            dataset=dataset,
            with_best_only=best_only,
            offset=p.integer("offset", 0, 0),
            limit=p.integer("limit", 50, 1, MAX_LIMIT),
        )
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def _filters_data(registry: Registry, q: RunQuery) -> dict[str, Any]:
    return {
        "filters": {
            **{f: list(getattr(q, f)) for f in PART_FILTERS},
            "name": q.name,
            "status": list(q.status),
            "sort": q.sort,
            "order": "desc" if q.descending else "asc",
        },
        "facets": {
            f: [{"value": v, "runs": n} for v, n in values] for f, values in registry.catalog.facets().items()
        },
        "criteria": registry.catalog.criteria(),
        "statuses": list(STATUSES),
        "sort_keys": list(SORT_KEYS),
    }


def runs(request: Request, registry: Registry) -> dict[str, Any]:
    """The runs table: filtered, sorted and paged on the server."""
    p = Params(request.query_params, RUN_PARAMS)
    q = _run_query(p, registry)
    return {**registry.catalog.query(q), **_filters_data(registry, q)}


def leaderboard(request: Request, registry: Registry) -> dict[str, Any]:
    """Runs with a best checkpoint by the criterion, best first, with the runs table's filters."""
    p = Params(
        request.query_params, (*PART_FILTERS, "name", "status", "criterion", "dataset", "offset", "limit")
    )
    q = _run_query(p, registry, sort="best", best_only=True)
    page = registry.catalog.query(q)
    for rank, row in enumerate(page["rows"], start=q.offset + 1):
        row["rank"] = rank
    return {**page, **_filters_data(registry, q)}


def _run_name(request: Request) -> str:
    name = request.path_params["name"]
    try:
        return check_name(name, "run name")
    except (ValueError, TypeError) as exc:
        raise BadRequest(str(exc)) from None


def run(request: Request, registry: Registry) -> dict[str, Any]:
    """One run: config, metadata, checkpoints, curves, training loss, lineage."""
    Params(request.query_params, ())
    name = _run_name(request)
    summary = registry.catalog.summary(name)
    try:
        catalog = registry.catalog
        detail = run_detail(
            registry.configs,
            registry.weights,
            name,
            summary,
            stored=catalog.stored(),
            starts_from=catalog.starts_from,
            start_of=catalog.start_of,
        )
    except ConfigNotFoundError as exc:
        raise NotFound(str(exc)) from None
    detail["summary"] = summary.as_json(stale_after=registry.catalog.stale_after) if summary else None
    return detail


def compare(request: Request, registry: Registry) -> dict[str, Any]:
    """2 to 20 runs: the config fields that differ, and their curves overlaid per criterion."""
    p = Params(request.query_params, ("runs",))
    names = list(p.names("runs", "run name"))
    if len(p._values("runs")) != len(names):
        raise BadRequest("compare: a run is named twice")
    try:
        check_run_names(names)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    try:
        data = compare_runs(registry.configs, registry.weights, names)
    except ConfigNotFoundError as exc:
        raise NotFound(str(exc)) from None
    data["summaries"] = [
        (s.as_json(stale_after=registry.catalog.stale_after) if s else None)
        for s in (registry.catalog.summary(n) for n in names)
    ]
    return data


def _kind(request: Request) -> str:
    kind = request.path_params["kind"]
    if kind not in KINDS:
        raise NotFound(f"unknown config kind {kind!r}: use one of {', '.join(KINDS)}")
    return kind


def configs(request: Request, registry: Registry) -> dict[str, Any]:
    """The names of one kind's configs, paged, optionally narrowed by a name substring."""
    p = Params(request.query_params, ("name", "offset", "limit"))
    kind = _kind(request)
    needle = p.string("name")
    offset, limit = p.integer("offset", 0, 0), p.integer("limit", 100, 1, MAX_LIMIT)
    names = registry.catalog.names() if kind == "runs" else registry.configs.names(kind)
    if needle:
        names = [n for n in names if needle.casefold() in n.casefold()]
    return {
        "kind": kind,
        "kinds": list(KINDS),
        "name": needle,
        "total": len(names),
        "offset": offset,
        "limit": limit,
        "names": names[offset : offset + limit],
    }


def config(request: Request, registry: Registry) -> dict[str, Any]:
    """One config document, who stored it, and a page of the runs that use it (with their best)."""
    kind = _kind(request)
    lists_runs = kind in KIND_FILTER or kind in NESTED_KINDS
    p = Params(request.query_params, ("offset", "limit") if lists_runs else ())
    offset, limit = p.integer("offset", 0, 0), p.integer("limit", 100, 1, MAX_LIMIT)
    try:
        slash_ok = getattr(registry.configs, "slash_in_names", False)  # MongoDB keeps DaCapo's '/' names
        name = check_name(request.path_params["name"], f"{kind[:-1]} name", slash_ok=slash_ok)
        document = registry.configs.get_document(kind, name)
    except ConfigNotFoundError as exc:
        raise NotFound(str(exc)) from None
    except (ValueError, TypeError) as exc:
        raise BadRequest(str(exc)) from None
    try:
        meta = registry.configs.metadata(kind, name)
        metadata = {
            "created_at": meta.created_at.isoformat() if meta.created_at else None,
            "created_by": meta.created_by,
            "content_hash": meta.content_hash,
        }
    except (DacapoStoreError, ValueError):
        metadata = None
    used_by = None
    if kind in KIND_FILTER:
        q = RunQuery(sort="best", offset=offset, limit=limit, **{KIND_FILTER[kind]: (name,)})
        used_by = registry.catalog.query(q)
    elif kind in NESTED_KINDS:  # held by the datasplit, at any depth
        used_by = registry.catalog.query(RunQuery(sort="best", offset=offset, limit=limit, uses=(kind, name)))
    dialect = document_dialect(KIND_CLASSES[kind], document)  # 0.3.5, main, either or mixed
    return {
        "kind": kind,
        "name": name,
        "document": document,
        "metadata": metadata,
        "dialect": dialect,
        "runs": used_by,
    }


def health(registry: Registry) -> dict[str, Any]:
    """Whether the store answers (a cheap listing of the run names)."""
    try:
        count = len(registry.configs.names("runs"))
    except (DacapoStoreError, OSError) as exc:
        return {"ok": False, "store": registry.describe(), "error": type(exc).__name__}
    return {"ok": True, "store": registry.describe(), "runs": count}


def part_links(document: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Run document field -> (kind, name) of the parts stored in their own kinds."""
    out = {}
    for field, kind in RUN_PARTS.items():
        part = document.get(field)
        if isinstance(part, Mapping) and isinstance(part.get("name"), str):
            out[field] = (kind, part["name"])
    return out
