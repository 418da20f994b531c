"""One function per page: it reads the request's parameters and returns the page's data.

The HTML page renders that data with a template; its JSON twin under /api/v1/ returns it as it
is (the Datasette pattern). Numbers come from `dacapo_store.queries`, never from the templates:
each request reads one immutable version of the run catalog (`Registry.for_request`), so what a
page validates its parameters against is what it is built from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from starlette.requests import Request

from ..config_store.dialects import document_dialect
from ..config_store.documents import KIND_CLASSES, KINDS, RUN_PARTS
from ..criteria import start_rule
from ..errors import (
    ConfigNotFoundError,
    CriterionNotFoundError,
    DacapoStoreError,
    PickleCheckpointError,
    WeightsNotFoundError,
)
from ..names import check_name
from ..queries import STATUSES, CatalogSnapshot, RunCatalog, RunQuery, compare_runs, run_detail
from ..queries.catalog import MAX_LIMIT, PART_FILTERS, SORT_KEYS
from ..queries.runs import check_run_names
from ..queries.scores import scores_table
from ..queries.uses import NESTED_KINDS, nested_config
from ..weights.base import WeightsStore
from ..where import Condition, WhereError
from ..where import parse_all as parse_where
from .params import BadRequest, NotFound, Params
from .picker import choose, default_choice, short_labels


@attrs.define
class Registry:
    """What every view reads: the two stores and the run catalog over them."""

    configs: Any
    weights: WeightsStore
    catalog: RunCatalog

    def describe(self) -> str:
        """The store's name for pages: never with a password (describe() redacts it)."""
        return self.configs.describe()

    def for_request(self) -> RequestView:
        """The stores and one version of the catalog, for one request."""
        return RequestView(self)


class RequestView:
    """What one request reads: the stores, and the catalog as one immutable snapshot, taken when
    the request first asks for it (the catalog refreshed first, at most once a second)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.configs = registry.configs
        self.weights = registry.weights
        self._snapshot: CatalogSnapshot | None = None

    @property
    def catalog(self) -> CatalogSnapshot:
        if self._snapshot is None:
            self._snapshot = self.registry.catalog.snapshot()
        return self._snapshot

    def want_documents(self) -> None:
        """This request searches run documents (`where`): its snapshot comes with them."""
        if self._snapshot is None:
            self._snapshot = self.registry.catalog.snapshot(documents=True)

    def describe(self) -> str:
        return self.registry.describe()


#: config kind -> the run filter that selects its runs (kinds a run names directly).
KIND_FILTER = {kind: field.removesuffix("_config") for field, kind in RUN_PARTS.items()}

RUN_PARAMS = (
    *PART_FILTERS,
    "name",
    "status",
    "sort",
    "order",
    "criterion",
    "dataset",
    "offset",
    "limit",
    "where",
    "col",
)
#: What a page ranking runs takes besides its own: the criterion and dataset they are ranked by.
RANK_PARAMS = ("criterion", "dataset")
#: The criterion picker of the run and compare pages (see `picker.py`).
PICK_PARAMS = ("criterion", "metric", "channel")
#: `format=csv`: the CSV twin of a table (every row the filters select, unless offset/limit say).
FORMATS = ("json", "csv")


def _check_parts(registry: Registry, q: RunQuery) -> None:
    """A part filter naming a config that no run uses and the store doesn't hold is a 404."""
    facets = registry.catalog.facets()
    for part in PART_FILTERS:
        in_use = {value for value, _ in facets.get(part, [])}
        unknown = [v for v in getattr(q, part) if v not in in_use]
        if unknown:
            kind = next(k for k, f in KIND_FILTER.items() if f == part)
            stored = set(registry.configs.names(kind))
            for value in unknown:
                if value not in stored:
                    raise NotFound(
                        f"unknown {part} {value!r}: no run uses it and the store has no such {part}; "
                        f"{part}s the runs use: {', '.join(sorted(in_use)[:20]) or 'none'}"
                    )


def where_conditions(p: Params) -> tuple[Condition, ...]:
    """The `where=` expressions (repeatable; one per line of a value), each read by `where.parse`."""
    lines = [line for value in p.query.getlist("where") for line in value.splitlines() if line.strip()]
    try:
        return parse_where(lines)
    except WhereError as exc:
        raise BadRequest(str(exc)) from None


def _run_query(p: Params, registry: Registry, *, sort: str = "name", best_only: bool = False) -> RunQuery:
    criterion = p.criterion()
    dataset = p.name("dataset", "dataset name")
    where = where_conditions(p) if "where" in p.query else ()
    columns = p.criteria("col") if "col" in p.query else ()
    if where:
        registry.want_documents()
    try:  # every parameter is read before the registry is: a bad request is a 400 whatever its state
        q = RunQuery(
            where=where,
            columns=columns,
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
    check_ranking(registry, criterion, dataset, columns)
    _check_parts(registry, q)
    return q


def check_ranking(
    registry: Registry, criterion: str | None, dataset: str | None, columns: tuple[str, ...] = ()
) -> None:
    """A criterion (or metric column) no run has is a 404, and so is a dataset no run has scores
    of that criterion on (of any criterion, when none is named: the default is picked among
    the runs that have it)."""
    known = registry.catalog.criteria()
    for c in (criterion, *columns):
        if c is not None and c not in known:
            raise NotFound(
                f"no run has scores for criterion {c!r}; known criteria: {', '.join(known) or 'none'}"
            )
    if dataset is None:
        return
    chosen = criterion or (columns[0] if columns else None)
    if chosen is None:
        if not any(dataset in datasets for datasets in known.values()):
            everywhere = sorted({d for datasets in known.values() for d in datasets})
            raise NotFound(
                f"no run has scores on dataset {dataset!r}; datasets: {', '.join(everywhere) or 'none'}"
            )
    elif dataset not in known.get(chosen, []):
        raise NotFound(
            f"no run has {chosen!r} scores on dataset {dataset!r}; "
            f"it has them on: {', '.join(known.get(chosen, [])) or 'none'}"
        )


def _csv_wanted(p: Params) -> bool:
    return p.choice("format", FORMATS, "json") == "csv"


def _page(registry: Registry, q: RunQuery, p: Params) -> dict[str, Any]:
    """One page of the catalog's answer; for a CSV twin every row (unless offset/limit are given)."""
    if not _csv_wanted(p) or "offset" in p.query or "limit" in p.query:
        return registry.catalog.query(q)
    page = registry.catalog.query(attrs.evolve(q, offset=0, limit=MAX_LIMIT))
    while len(page["rows"]) < page["total"]:
        more = registry.catalog.query(attrs.evolve(q, offset=len(page["rows"]), limit=MAX_LIMIT))
        if not more["rows"]:
            break
        page["rows"] += more["rows"]
    page["limit"] = max(len(page["rows"]), 1)
    return page


def _filters_data(registry: Registry, q: RunQuery) -> dict[str, Any]:
    return {
        "filters": {
            **{f: list(getattr(q, f)) for f in PART_FILTERS},
            "name": q.name,
            "status": list(q.status),
            "sort": q.sort,
            "order": "desc" if q.descending else "asc",
            "criterion": q.criterion,
            "col": list(q.columns),
            "where": [c.text for c in q.where],
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
    p = Params(request.query_params, (*RUN_PARAMS, "format"))
    q = _run_query(p, registry)
    return {**_page(registry, q, p), **_filters_data(registry, q)}


def leaderboard(request: Request, registry: Registry) -> dict[str, Any]:
    """Runs with a best checkpoint by the criterion, best first, with the runs table's filters."""
    p = Params(
        request.query_params,
        (*PART_FILTERS, "name", "status", "criterion", "dataset", "offset", "limit", "format", "where"),
    )
    q = _run_query(p, registry, sort="best", best_only=True)
    page = _page(registry, q, p)
    for rank, row in enumerate(page["rows"], start=q.offset + 1):
        row["rank"] = rank
    return {**page, **_filters_data(registry, q)}


def _run_name(request: Request, registry: Registry) -> str:
    name = request.path_params["name"]
    try:
        return stored_run(registry, check_name(name, "run name"))
    except (ValueError, TypeError) as exc:
        raise BadRequest(str(exc)) from None


def stored_run(registry: Registry, name: str) -> str:
    """The stored run a name means: itself, else, if only that is stored, the name without the
    spaces around it (a name pasted with a trailing space); unknown names are left to 404."""
    stored = registry.catalog.stored()
    if name in stored:
        return name
    stripped = name.strip()
    return stripped if stripped != name and stripped in stored else name


def run(request: Request, registry: Registry) -> dict[str, Any]:
    """One run: config, metadata, checkpoints, curves, training loss, lineage; the criteria chosen
    in the picker (charts, checkpoint columns) and the best checkpoint of each by dataset."""
    p = Params(request.query_params, PICK_PARAMS)
    name = _run_name(request, registry)
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
            best_of=catalog.best,
        )
    except ConfigNotFoundError as exc:
        raise NotFound(str(exc)) from None
    detail["summary"] = summary.as_json(stale_after=registry.catalog.stale_after) if summary else None
    directions = _directions(detail["curves"])
    picker = choose(
        p,
        directions,
        default_choice(directions, registry.catalog.default_criterion(None)),
        where=f"run {name}",
    )
    chosen = picker["chosen"]
    datasets = sorted({c["dataset"] for c in detail["curves"]})
    scored = {(c["criterion"], c["dataset"]) for c in detail["curves"]}
    by_metric: dict[str, list[str]] = {}
    for c in chosen:
        by_metric.setdefault(picker["criteria"][c]["metric"], []).append(c)
    detail["picker"] = picker
    detail["charts"] = [
        {"metric": m, "criteria": cs, "higher_is_better": _same({directions[c] for c in cs})}
        for m, cs in sorted(by_metric.items())
    ]
    detail["labels"] = {"datasets": short_labels(datasets)}
    detail["columns"] = [
        {"criterion": c, "dataset": d, "key": f"{c}/{d}"}
        for c in chosen
        for d in datasets
        if (c, d) in scored
    ]
    detail["datasets"] = datasets
    detail["bests"] = [
        {
            "criterion": c,
            "higher_is_better": directions[c],
            "all": _pin_noted(_best(registry, name, c, None), detail["pinned"].get(f"{c}/all")),
            "datasets": {
                d: _pin_noted(_best(registry, name, c, d), detail["pinned"].get(f"{c}/{d}"))
                for d in datasets
                if (c, d) in scored
            },
        }
        for c in chosen
    ]
    return detail


def _pin_noted(best: dict[str, Any] | None, pin: dict[str, Any] | None) -> dict[str, Any] | None:
    """A pinned best with who pinned it (ours or DaCapo's best file) and the computed best beside."""
    if best is None or not best["pinned"] or pin is None:
        return best
    return {**best, "pinned_by": pin["source"], "computed": pin["computed"]}


def _same(values: set[Any]) -> Any:
    """The one value of a set, None if it holds several."""
    return next(iter(values)) if len(values) == 1 else None


def _directions(series: list[dict[str, Any]]) -> dict[str, bool | None]:
    """criterion -> higher is better (None: unknown), from the curves' directions."""
    out: dict[str, bool | None] = {}
    for s in series:
        if out.get(s["criterion"]) is None:
            out[s["criterion"]] = s.get("higher_is_better")
    return out


def _best(registry: Registry, run: str, criterion: str, dataset: str | None) -> dict[str, Any] | None:
    """The run's best checkpoint by a criterion on a dataset (None: the mean), as the catalog has it."""
    best = registry.catalog.best(run, criterion, dataset)
    return attrs.asdict(best) if best else None


def run_scores(request: Request, registry: Registry) -> dict[str, Any]:
    """Every validation score of a run (one criterion's, one dataset's), as `dacapo-store scores`."""
    p = Params(request.query_params, ("criterion", "dataset", "format"))
    _csv_wanted(p)
    name = _run_name(request, registry)
    if name not in registry.catalog.stored():
        raise NotFound(f"no run named {name!r} in {registry.describe()}")
    criterion = p.criterion()
    dataset = p.name("dataset", "dataset name")
    rows = scores_table(registry.weights, name, dataset=dataset, criterion=criterion)
    return {
        "run": name,
        "criterion": criterion,
        "dataset": dataset,
        "rows": [attrs.asdict(row) for row in rows],
    }


def compare_names(p: Params, registry: Registry) -> tuple[list[str], bool]:
    """The runs a compare names, and whether they came comma-separated.

    Repeated `runs=` parameters name one run each, as they are (a name may hold a comma); a
    single `runs=` value is the older comma-separated form. Each name is then the stored run it
    means (`stored_run`: a pasted trailing space is forgiven).
    """
    values = p.query.getlist("runs")
    split = len(values) == 1
    if split:
        values = [v.strip() for v in values[0].split(",") if v.strip()]
    names = []
    for value in values:
        try:
            names.append(stored_run(registry, check_name(value, "run name")))
        except (ValueError, TypeError) as exc:
            raise BadRequest(str(exc)) from None
    return names, split


def compare(request: Request, registry: Registry) -> dict[str, Any]:
    """2 to 20 runs: the config fields that differ, the best of each chosen criterion per run, and
    their curves overlaid per chosen criterion (by default those the runs share)."""
    p = Params(request.query_params, ("runs", *PICK_PARAMS))
    names, split = compare_names(p, registry)
    try:
        check_run_names(names)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    try:
        data = compare_runs(registry.configs, registry.weights, names)
    except ConfigNotFoundError as exc:
        hint = " (one runs= value is split on commas: give each run its own runs= parameter)"
        raise NotFound(
            str(exc) + (hint if split and any("," in n for n in p.query.getlist("runs")) else "")
        ) from None
    data["summaries"] = [
        (s.as_json(stale_after=registry.catalog.stale_after) if s else None)
        for s in (registry.catalog.summary(n) for n in names)
    ]
    has = {c["criterion"]: {s["run"] for s in c["series"]} for c in data["curves"]}
    directions = _directions(
        [{**s, "criterion": c["criterion"]} for c in data["curves"] for s in c["series"]]
    )
    most = max((len(runs) for runs in has.values()), default=0)
    shared = [c for c, runs in has.items() if len(runs) == most and most >= 2]
    picker = choose(
        p,
        directions,
        default_choice(shared, registry.catalog.default_criterion(None)),
        where="these runs",
    )
    chosen = picker["chosen"]
    data["picker"] = picker
    data["missing"] = {c: [n for n in names if n not in has[c]] for c in chosen}
    data["labels"] = {
        "runs": short_labels(names),
        "datasets": short_labels(sorted({s["dataset"] for c in data["curves"] for s in c["series"]})),
    }
    data["bests"] = [_best_row(registry, names, c, directions[c]) for c in chosen]
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in data["differences"]:
        groups.setdefault(_top(row["field"]), []).append(row)
    own = groups.pop("run", None)
    data["groups"] = [
        {"part": part, "rows": rows} for part, rows in ([("run", own)] if own else []) + list(groups.items())
    ]
    return data


def _best_row(registry: Registry, names: list[str], criterion: str, higher: bool | None) -> dict[str, Any]:
    """Each run's best by a criterion (mean over its datasets: what a StartConfig loads), the
    winner marked when the criterion's direction is known."""
    bests = [_best(registry, n, criterion, None) for n in names]
    values = [(b["value"], i) for i, b in enumerate(bests) if b and b["value"] is not None]
    winner = None
    if values and higher is not None:
        winner = (max if higher else min)(values)[1]
    return {"criterion": criterion, "higher_is_better": higher, "runs": bests, "winner": winner}


def _top(field: str) -> str:
    """The part of the run a field path is in: `datasplit_config.train_configs[0].name` ->
    `datasplit_config`; the run's own fields (`name`, `num_iterations`) -> `run`."""
    top = field.split(".", 1)[0].split("[", 1)[0]
    return top if top != field else "run"


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
    nested_only: list[str] = []
    if kind in NESTED_KINDS:  # DaCapo's files layout keeps datasets only inside datasplits
        stored = set(names)
        nested_only = [n for n in registry.catalog.used(kind) if n not in stored]
        names = sorted(stored | set(nested_only))
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
        "nested_only": [n for n in names[offset : offset + limit] if n in set(nested_only)],
    }


def config(request: Request, registry: Registry) -> dict[str, Any]:
    """One config document, who stored it, and a page of the runs that use it (with their best)."""
    kind = _kind(request)
    lists_runs = kind in KIND_FILTER or kind in NESTED_KINDS
    p = Params(request.query_params, ("offset", "limit", *RANK_PARAMS) if lists_runs else ())
    offset, limit = p.integer("offset", 0, 0), p.integer("limit", 100, 1, MAX_LIMIT)
    criterion, dataset = p.criterion(), p.name("dataset", "dataset name")
    try:
        slash_ok = getattr(registry.configs, "slash_in_names", False)  # MongoDB keeps DaCapo's '/' names
        nested = kind in NESTED_KINDS  # a dataset or array may live only inside runs, '/' and all
        name = check_name(request.path_params["name"], f"{kind[:-1]} name", slash_ok=slash_ok or nested)
        held_by = None
        try:
            if nested and not slash_ok and "/" in name:
                raise ConfigNotFoundError(name)  # the store can't hold it on its own
            document = registry.configs.get_document(kind, name)
        except ConfigNotFoundError:
            if not nested:
                raise
            document, held_by = nested_document(registry, kind, name)
    except ConfigNotFoundError as exc:
        raise NotFound(str(exc)) from None
    except (ValueError, TypeError) as exc:
        raise BadRequest(str(exc)) from None
    try:
        if held_by is not None:
            raise ConfigNotFoundError(name)  # not stored on its own: no metadata of its own
        meta = registry.configs.metadata(kind, name)
        metadata = {
            "created_at": meta.created_at.isoformat() if meta.created_at else None,
            "created_by": meta.created_by,
            "content_hash": meta.content_hash,
        }
    except (DacapoStoreError, ValueError):
        metadata = None
    used_by = None
    if lists_runs:
        check_ranking(registry, criterion, dataset)
        rank = {"sort": "best", "offset": offset, "limit": limit, "criterion": criterion, "dataset": dataset}
        if kind in KIND_FILTER:
            q = RunQuery(**rank, **{KIND_FILTER[kind]: (name,)})
        else:  # held by the datasplit, at any depth
            q = RunQuery(**rank, uses=(kind, name))
        used_by = registry.catalog.query(q)
    dialect = document_dialect(KIND_CLASSES[kind], document)  # 0.3.5, main, either or mixed
    return {
        "kind": kind,
        "name": name,
        "document": document,
        "metadata": metadata,
        "dialect": dialect,
        "runs": used_by,
        "held_by": held_by,
        "criteria": list(registry.catalog.criteria()) if lists_runs else [],
    }


def nested_document(registry: Registry, kind: str, name: str) -> tuple[dict[str, Any], str]:
    """A dataset or array config not stored on its own, as the first run holding it has it (its
    document and that run's name); ConfigNotFoundError if no run holds one."""
    for run in registry.catalog.used(kind).get(name, []):
        try:
            found = nested_config(registry.configs.get_document("runs", run), kind, name)
        except ConfigNotFoundError:
            continue
        if found is not None:
            return found, run
    raise ConfigNotFoundError(
        f"no {kind[:-1]} named {name!r} in {registry.describe()}, stored or inside a run"
    )


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


class Refused(Exception):
    """A DaCapo checkpoint the restricted unpickler won't read (422): not a bad request, not a
    store fault; deliberately outside the exceptions `app._call` maps."""


@attrs.frozen
class Checkpoint:
    """A checkpoint's model weights to download: which run and iteration, as safetensors bytes."""

    run: str
    iteration: int
    body: bytes


def checkpoint(request: Request, registry: Registry) -> Checkpoint:
    """The model weights a StartConfig(run, criterion) would load, as one safetensors file.

    `criterion` takes what a StartConfig takes: a criterion name (its best, by the mean over the
    datasets, or by one `dataset`), `latest`, or an iteration number. DaCapo's own checkpoints are
    read through the restricted unpickler, as `retrieve_weights` reads them; one holding anything
    outside its allow-list is refused (`PickleCheckpointError`), never unpickled here.
    """
    from ..configs import StartConfig
    from ..start import Start

    p = Params(request.query_params, ("criterion", "dataset"))
    name = _run_name(request, registry)
    if name not in registry.catalog.stored():
        raise NotFound(f"no run named {name!r} in {registry.describe()}")
    criterion = p.string("criterion")
    dataset = p.name("dataset", "dataset name")
    if criterion is None:
        raise BadRequest(
            "name the checkpoint: criterion=<a criterion>, criterion=latest or criterion=<iteration>"
        )
    try:
        kind, _ = start_rule(criterion)
    except (TypeError, ValueError) as exc:  # a 400 for a malformed criterion
        raise BadRequest(str(exc)) from None
    if kind != "criterion" and dataset is not None:
        raise BadRequest("dataset= goes with a criterion name, not with 'latest' or an iteration")
    try:
        if dataset is not None:
            iteration = registry.weights.retrieve_best(name, criterion, dataset)
        else:
            iteration = Start(StartConfig(run=name, criterion=criterion), registry.weights).iteration()
        weights = registry.weights.retrieve_weights(name, iteration)
    except (WeightsNotFoundError, CriterionNotFoundError) as exc:
        raise NotFound(str(exc)) from None
    except PickleCheckpointError as exc:
        raise Refused(
            f"{exc}. The dashboard converts only what the restricted unpickler reads; if you trust "
            "the file, load it in Python with retrieve_weights(..., allow_pickle=True)"
        ) from None
    return Checkpoint(
        name, iteration, safetensors_bytes(weights.model, {"run": name, "iteration": str(iteration)})
    )


def safetensors_bytes(state: Mapping[str, Any], metadata: Mapping[str, str]) -> bytes:
    """A state dict's tensors as a safetensors file (tensors sharing memory are written apart)."""
    import torch
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items() if isinstance(v, torch.Tensor)}
    skipped = sorted(k for k, v in state.items() if not isinstance(v, torch.Tensor))
    meta = {**metadata, **({"skipped": ",".join(skipped)} if skipped else {})}
    try:
        return save(tensors, metadata=meta)
    except RuntimeError:  # shared storage (tied weights): each tensor gets its own copy
        return save({k: v.clone() for k, v in tensors.items()}, metadata=meta)
