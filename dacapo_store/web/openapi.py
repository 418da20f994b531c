"""The OpenAPI 3.0 document of the JSON API, as served at /api/v1/openapi.json."""

from __future__ import annotations

from functools import cache
from typing import Any

from ..config_store.documents import KINDS
from ..queries.catalog import MAX_COLUMNS, MAX_LIMIT, SORT_KEYS
from ..queries.runs import STATUSES
from ..queries.uses import NESTED_KINDS

_NULL_STR = {"type": "string", "nullable": True}
_NULL_INT = {"type": "integer", "nullable": True}
_NULL_NUM = {"type": "number", "nullable": True}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _param(name: str, schema: dict[str, Any], description: str, where: str = "query", **extra: Any) -> dict:
    return {"name": name, "in": where, "schema": schema, "description": description, **extra}


#: The names rule (names.py): printable, no backslash, not starting with '.', at most 250 bytes.
_NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": 250,
    "pattern": "^[^.\\\\\\x00-\\x1f\\x7f][^\\\\\\x00-\\x1f\\x7f]*$",
}
_CRITERION = {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_-]{0,127}$"}

_FILTERS = [
    _param("task", _NAME, "Only runs with this task."),
    _param("architecture", _NAME, "Only runs with this architecture."),
    _param("trainer", _NAME, "Only runs with this trainer."),
    _param("datasplit", _NAME, "Only runs with this datasplit."),
    _param("name", {"type": "string", "maxLength": 200}, "Only runs whose name contains this (any case)."),
    _param("status", {"type": "string", "enum": list(STATUSES)}, "Only runs with this status."),
    _param(
        "criterion",
        _CRITERION,
        "The criterion runs are ranked by (default: the one most of the listed runs have; ties: the "
        "main metric, e.g. dice, then the name).",
    ),
    _param("dataset", _NAME, "The dataset of the best column (default: the mean over datasets)."),
    _param("offset", {"type": "integer", "minimum": 0, "maximum": 10**12}, "Rows to skip."),
    _param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "Rows per page."),
    _param(
        "where",
        {"type": "array", "items": {"type": "string", "maxLength": 1000}},
        "Only runs whose document every expression holds on: 'PATH OP VALUE', PATH dotted into the "
        "run document, OP one of == != < <= > >= ~, VALUE a JSON literal or bare text "
        "(e.g. architecture_config.fmaps_out == 32). Repeatable (AND).",
        explode=True,
    ),
]
#: The metric columns of the runs table.
_COLUMNS = _param(
    "col",
    {"type": "array", "items": _CRITERION, "maxItems": MAX_COLUMNS},
    "Criteria whose bests each row carries under `bests` (the runs table's metric columns); the "
    "first is the ranking criterion when `criterion` is not given. Repeatable.",
    explode=True,
)

_ERRORS = {
    "400": {"description": "Bad input", "content": {"application/json": {"schema": _ref("Error")}}},
    "401": {"description": "A token is needed", "content": {"application/json": {"schema": _ref("Error")}}},
    "404": {"description": "Not found", "content": {"application/json": {"schema": _ref("Error")}}},
    "500": {
        "description": "The store failed (the message names no server path; the server's log says why)",
        "content": {"application/json": {"schema": _ref("Error")}},
    },
    "503": {
        "description": "The store can't be reached",
        "content": {"application/json": {"schema": _ref("Error")}},
    },
}


_ERRORS["422"] = {
    "description": "A DaCapo checkpoint the restricted unpickler refuses",
    "content": {"application/json": {"schema": _ref("Error")}},
}
#: Every page answers a request naming its current ETag (If-None-Match) with a 304 and no body.
_NOT_MODIFIED = {"description": "Not modified since the ETag named by If-None-Match"}


def _get(
    summary: str,
    schema: dict[str, Any],
    params: list[dict],
    errors: tuple[str, ...] = ("400", "401", "503"),
    *,
    csv: bool = False,
    media: str = "application/json",
):
    content = {media: {"schema": schema}}
    if csv:
        content["text/csv"] = {"schema": {"type": "string"}}
    responses = {"200": {"description": "OK", "content": content}, "304": _NOT_MODIFIED}
    responses.update({code: _ERRORS[code] for code in (*errors, "500")})
    return {"get": {"summary": summary, "parameters": params, "responses": responses}}


_FORMAT = _param(
    "format",
    {"type": "string", "enum": ["json", "csv"]},
    "csv: the table as CSV (every row the filters select, unless offset or limit are given).",
)
#: The criterion picker of the run and compare pages: what their charts and tables show.
_PICK = [
    _param(
        "criterion",
        {"type": "array", "items": _CRITERION},
        "Show these criteria (repeatable).",
        style="form",
        explode=True,
    ),
    _param(
        "metric",
        {"type": "array", "items": {"type": "string", "maxLength": 128}},
        "Show every criterion of these metrics (`dice` for `mito__dice`, ...; repeatable).",
        style="form",
        explode=True,
    ),
    _param(
        "channel",
        {"type": "array", "items": {"type": "string", "maxLength": 128}},
        "Show the criteria of these channels (`mito` for `mito__dice`, ...; repeatable).",
        style="form",
        explode=True,
    ),
]


_BEST = {
    "type": "object",
    "nullable": True,
    "required": ["iteration", "value", "pinned"],
    "properties": {
        "iteration": {"type": "integer"},
        "value": _NULL_NUM,
        "pinned": {"type": "boolean"},
        "loadable": {
            "type": "boolean",
            "description": "False: the run's best score, whose checkpoint is gone (no checkpoint).",
        },
        "pinned_by": {
            "type": "string",
            "enum": ["pin", "dacapo"],
            "description": "a pinned best (run page): a pin of ours, or one of DaCapo's automatic best files",
        },
        "computed": {
            "type": "object",
            "nullable": True,
            "description": "a pinned best: the best without pins",
        },
    },
}

_SUMMARY = {
    "type": "object",
    "required": ["name", "status", "iterations_trained", "checkpoints"],
    "properties": {
        "name": {"type": "string"},
        "task": _NULL_STR,
        "architecture": _NULL_STR,
        "trainer": _NULL_STR,
        "datasplit": _NULL_STR,
        "repetition": _NULL_INT,
        "num_iterations": _NULL_INT,
        "start_run": _NULL_STR,
        "start_criterion": _NULL_STR,
        "created_by": _NULL_STR,
        "created_at": _NULL_STR,
        "iterations_trained": {"type": "integer"},
        "latest_checkpoint": _NULL_INT,
        "checkpoints": {"type": "integer"},
        "has_stats": {"type": "boolean"},
        "updated_at": _NULL_STR,
        "criteria": {"type": "array", "items": {"type": "string"}},
        "datasets": {"type": "array", "items": {"type": "string"}},
        "damage": {**_NULL_STR, "description": "What is wrong when the run's data can't be read."},
        "uses": {
            "type": "object",
            "description": "Names of the dataset and array configs its document holds, by kind.",
            "properties": {kind: {"type": "array", "items": {"type": "string"}} for kind in NESTED_KINDS},
        },
        "status": {"type": "string", "enum": list(STATUSES)},
        "best": _BEST,
        "bests": {"type": "object", "additionalProperties": _BEST, "description": "by each `col` criterion"},
        "rank": {"type": "integer"},
    },
}

_PAGE = {
    "type": "object",
    "required": ["total", "offset", "limit", "rows", "criterion", "dataset", "criteria", "facets"],
    "properties": {
        "total": {"type": "integer", "minimum": 0},
        "offset": {"type": "integer", "minimum": 0},
        "limit": {"type": "integer", "minimum": 1},
        "criterion": _NULL_STR,
        "dataset": _NULL_STR,
        "columns": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"criterion": {"type": "string"}, "higher_is_better": {"type": "boolean"}},
            },
        },
        "rows": {"type": "array", "items": _ref("RunSummary")},
        "criteria": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
        "facets": {"type": "object"},
        "filters": {"type": "object"},
        "statuses": {"type": "array", "items": {"type": "string"}},
        "sort_keys": {"type": "array", "items": {"type": "string"}},
    },
}

#: The runs a config page lists: a page of the runs table, without its filter choices.
_USED_BY = {
    "type": "object",
    "nullable": True,
    "required": ["total", "offset", "limit", "rows", "criterion", "dataset"],
    "properties": {
        key: _PAGE["properties"][key] for key in ("total", "offset", "limit", "criterion", "dataset", "rows")
    },
}

_SERIES = {
    "type": "object",
    "required": ["iterations", "values"],
    "properties": {
        "criterion": {"type": "string"},
        "dataset": {"type": "string"},
        "run": {"type": "string"},
        "higher_is_better": {"type": "boolean", "nullable": True},
        "iterations": {"type": "array", "items": {"type": "integer"}},
        "values": {"type": "array", "items": _NULL_NUM},
        "best": _BEST,
    },
}

#: The picker of a page (`picker.choose`): the criteria by metric and channel, and the chosen ones.
_PICKER = {
    "type": "object",
    "required": ["chosen", "default", "total", "metrics", "channels", "grid", "criteria"],
    "properties": {
        "chosen": {"type": "array", "items": {"type": "string"}},
        "default": {"type": "boolean", "description": "nothing was picked: the page's default choice"},
        "total": {"type": "integer"},
        "metrics": {"type": "array", "items": {"type": "string"}},
        "channels": {"type": "array", "items": {"type": "string"}, "description": "'': no channel"},
        "grid": {
            "type": "object",
            "description": "metric -> channel -> criterion",
            "additionalProperties": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "criteria": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "channel": _NULL_STR,
                    "metric": {"type": "string"},
                    "higher_is_better": {"type": "boolean", "nullable": True},
                },
            },
        },
    },
}
_LABELS = {
    "type": "object",
    "description": "short labels of long names, for legends and headers",
    "additionalProperties": {"type": "object", "additionalProperties": {"type": "string"}},
}

_RUN = {
    "type": "object",
    "required": ["name", "config", "checkpoints", "curves", "training", "lineage"],
    "properties": {
        "name": {"type": "string"},
        "summary": {**_ref("RunSummary"), "nullable": True},
        "damage": _NULL_STR,
        "config": {"type": "object"},
        "parts": {"type": "object"},
        "checkpoints": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["iteration", "scores", "best_for", "pinned_for"],
                "properties": {
                    "iteration": {"type": "integer"},
                    "legacy": {"type": "boolean"},
                    "size": _NULL_INT,
                    "created_at": _NULL_STR,
                    "created_by": _NULL_STR,
                    "damaged": _NULL_STR,
                    "scores": {"type": "object", "additionalProperties": _NULL_NUM},
                    "best_for": {"type": "array", "items": {"type": "string"}},
                    "pinned_for": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
        "curves": {"type": "array", "items": _ref("Series")},
        "pinned": {
            "type": "object",
            "description": "each pinned best ('criterion/dataset', 'all' for the mean): who pinned it "
            "(pin: ours; dacapo: DaCapo's automatic best file) and the best without pins",
            "additionalProperties": {
                "type": "object",
                "properties": {"source": {"type": "string", "enum": ["pin", "dacapo"]}, "computed": _BEST},
            },
        },
        "training": {
            "type": "object",
            "required": ["iterations", "loss"],
            "properties": {
                "iterations": {"type": "array", "items": {"type": "integer"}},
                "loss": {"type": "array", "items": _NULL_NUM},
            },
        },
        "lineage": {
            "type": "object",
            "required": ["up", "down"],
            "properties": {"up": {"type": "array"}, "down": {"type": "array"}},
        },
        "picker": _PICKER,
        "charts": {
            "type": "array",
            "description": "one chart per chosen metric",
            "items": {
                "type": "object",
                "properties": {
                    "metric": {"type": "string"},
                    "criteria": {"type": "array", "items": {"type": "string"}},
                    "higher_is_better": {"type": "boolean", "nullable": True},
                },
            },
        },
        "labels": _LABELS,
        "datasets": {"type": "array", "items": {"type": "string"}},
        "columns": {
            "type": "array",
            "description": "the checkpoint table's score columns: the chosen criteria on each dataset",
            "items": {
                "type": "object",
                "properties": {
                    "criterion": {"type": "string"},
                    "dataset": {"type": "string"},
                    "key": {"type": "string"},
                },
            },
        },
        "bests": {
            "type": "array",
            "description": "the best checkpoint of each chosen criterion: by the mean and per dataset",
            "items": {
                "type": "object",
                "properties": {
                    "criterion": {"type": "string"},
                    "higher_is_better": {"type": "boolean", "nullable": True},
                    "all": _BEST,
                    "datasets": {"type": "object", "additionalProperties": _BEST},
                },
            },
        },
    },
}

_SCORES = {
    "type": "object",
    "required": ["run", "rows"],
    "properties": {
        "run": {"type": "string"},
        "criterion": _NULL_STR,
        "dataset": _NULL_STR,
        "rows": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["iteration", "dataset", "criterion", "value", "best", "has_weights"],
                "properties": {
                    "iteration": {"type": "integer"},
                    "dataset": {"type": "string"},
                    "criterion": {"type": "string"},
                    "value": _NULL_NUM,
                    "best": {"type": "boolean"},
                    "has_weights": {"type": "boolean"},
                },
            },
        },
    },
}

_COMPARE = {
    "type": "object",
    "required": ["runs", "differences", "curves"],
    "properties": {
        "runs": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 20},
        "differences": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "values"],
                "properties": {"field": {"type": "string"}, "values": {"type": "array"}},
            },
        },
        "curves": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["criterion", "series"],
                "properties": {
                    "criterion": {"type": "string"},
                    "series": {"type": "array", "items": _ref("Series")},
                },
            },
        },
        "summaries": {"type": "array"},
        "picker": _PICKER,
        "missing": {
            "type": "object",
            "description": "chosen criterion -> the runs without scores for it",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
        "labels": _LABELS,
        "bests": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "criterion": {"type": "string"},
                    "higher_is_better": {"type": "boolean", "nullable": True},
                    "runs": {"type": "array", "items": _BEST},
                    "winner": {**_NULL_INT, "description": "index of the best run"},
                },
            },
        },
        "groups": {
            "type": "array",
            "description": "the differences by part of the run ('run': its own fields)",
            "items": {
                "type": "object",
                "properties": {"part": {"type": "string"}, "rows": {"type": "array"}},
            },
        },
    },
}


@cache
def openapi_document() -> dict[str, Any]:
    """The API's description; every response of the server conforms to it (schemathesis checks)."""
    kind = _param("kind", {"type": "string", "enum": list(KINDS)}, "A config kind.", "path", required=True)
    name = _param("name", _NAME, "A name.", "path", required=True)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "dacapo-store dashboard API",
            "version": "1",
            "description": "Read-only views of a DaCapo registry. Every HTML page has its JSON twin here.",
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["status", "message"],
                            "properties": {"status": {"type": "integer"}, "message": {"type": "string"}},
                        }
                    },
                },
                "RunSummary": _SUMMARY,
                "Series": _SERIES,
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/api/v1/runs": _get(
                "The runs table: filtered, sorted and paged on the server",
                _PAGE,
                [
                    *_FILTERS,
                    _param("sort", {"type": "string", "enum": list(SORT_KEYS)}, "Sort key."),
                    _param("order", {"type": "string", "enum": ["asc", "desc"]}, "Sort order."),
                    _COLUMNS,
                    _FORMAT,
                ],
                ("400", "401", "404", "503"),
                csv=True,
            ),
            "/api/v1/runs/{name}": _get(
                "One run: config, checkpoints, curves, training loss, lineage; the chosen criteria",
                _RUN,
                [name, *_PICK],
                ("400", "401", "404", "503"),
            ),
            "/api/v1/runs/{name}/scores": _get(
                "Every validation score of a run (as `dacapo-store scores`), as JSON or CSV",
                _SCORES,
                [
                    name,
                    _param("criterion", _CRITERION, "Only this criterion's scores."),
                    _param("dataset", _NAME, "Only the scores on this dataset."),
                    _FORMAT,
                ],
                ("400", "401", "404", "503"),
                csv=True,
            ),
            "/api/v1/runs/{name}/checkpoint": _get(
                "The model weights a StartConfig(run, criterion) loads, as a safetensors file",
                {"type": "string", "format": "binary"},
                [
                    name,
                    _param(
                        "criterion",
                        {"type": "string", "pattern": "^(latest|[0-9]{1,12}|[A-Za-z_][A-Za-z0-9_-]{0,127})$"},
                        "A criterion (its best checkpoint), 'latest', or an iteration number.",
                        required=True,
                    ),
                    _param("dataset", _NAME, "With a criterion: the best on this dataset, not the mean."),
                ],
                ("400", "401", "404", "422", "503"),
                media="application/octet-stream",
            ),
            "/api/v1/compare": _get(
                "2 to 20 runs: differing config fields and curves per criterion",
                _COMPARE,
                [
                    _param(
                        "runs",
                        {"type": "array", "items": _NAME, "minItems": 2, "maxItems": 20, "uniqueItems": True},
                        "The runs (2 to 20), one runs= parameter each (a name may hold a comma); a single "
                        "runs= value is split on commas (the older form).",
                        required=True,
                        style="form",
                        explode=True,
                    ),
                    *_PICK,
                ],
                ("400", "401", "404", "503"),
            ),
            "/api/v1/leaderboard": _get(
                "Runs by their best checkpoint for a criterion and dataset, best first",
                _PAGE,
                [*_FILTERS, _FORMAT],
                ("400", "401", "404", "503"),
                csv=True,
            ),
            "/api/v1/configs/{kind}": _get(
                "The names of one kind's configs",
                {
                    "type": "object",
                    "required": ["kind", "total", "names"],
                    "properties": {
                        "kind": {"type": "string"},
                        "total": {"type": "integer"},
                        "offset": {"type": "integer"},
                        "limit": {"type": "integer"},
                        "names": {"type": "array", "items": {"type": "string"}},
                        "nested_only": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "datasets or arrays listed that are only inside runs",
                        },
                    },
                },
                [
                    kind,
                    _param("name", {"type": "string", "maxLength": 200}, "Only names containing this."),
                    _param("offset", {"type": "integer", "minimum": 0, "maximum": 10**12}, "Names to skip."),
                    _param(
                        "limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "Names per page."
                    ),
                ],
                ("400", "401", "404", "503"),
            ),
            "/api/v1/configs/{kind}/{name}": _get(
                "One config document, its metadata, and the runs that use it",
                {
                    "type": "object",
                    "required": ["kind", "name", "document"],
                    "properties": {
                        "kind": {"type": "string"},
                        "name": {"type": "string"},
                        "document": {"type": "object"},
                        "metadata": {"type": "object", "nullable": True},
                        "dialect": {
                            "type": "string",
                            "enum": ["0.3.5", "main", "either", "mixed"],
                            "description": "The document's DaCapo dialect (either: both write it alike).",
                        },
                        "runs": _USED_BY,
                        "criteria": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "the criteria the runs can be ranked by (criterion=)",
                        },
                        "held_by": {
                            "type": "string",
                            "nullable": True,
                            "description": "a dataset or array not stored on its own: the run holding it",
                        },
                    },
                },
                [
                    kind,
                    name,
                    _param("offset", {"type": "integer", "minimum": 0, "maximum": 10**12}, "Runs to skip."),
                    _param(
                        "limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "Runs per page."
                    ),
                    _param("criterion", _CRITERION, "The criterion the runs using it are ranked by."),
                    _param("dataset", _NAME, "The dataset of that criterion (default: the mean)."),
                ],
                ("400", "401", "404", "503"),
            ),
            "/healthz": {
                "get": {
                    "summary": "Whether the store answers",
                    "parameters": [],
                    "responses": {
                        "400": _ERRORS["400"],
                        **{
                            code: {
                                "description": text,
                                "content": {
                                    "application/json": {
                                        "schema": {
                                            "type": "object",
                                            "required": ["ok", "store"],
                                            "properties": {
                                                "ok": {"type": "boolean"},
                                                "store": {"type": "string"},
                                                "runs": {"type": "integer"},
                                                "error": {"type": "string"},
                                            },
                                        }
                                    }
                                },
                            }
                            for code, text in (("200", "The store answers"), ("503", "It does not"))
                        },
                    },
                }
            },
        },
        "security": [{"bearer": []}, {}],
    }
