"""Every face gives the same best (issue 17): a property test over generated registries.

Hypothesis draws small registries where our index and DaCapo's own layout sit side by side: our
checkpoints (some found damaged), DaCapo's checkpoint files, scores of ours and DaCapo's (NaN among
them, on two datasets, ours winning where both have one), pins of ours run-wide and per dataset,
DaCapo's best files, runs with scores but no checkpoint. For every (run, criterion, dataset) the
best is computed here from the description alone (the rule of README "Scores and bests"), and
every face must say the same: retrieve_best / best_choice, Start, WeightsStore.leaderboard, the
queries leaderboard, the scores table's mark, `weights list`'s marks, and the web API's runs
table, leaderboard and run page. On the files backend and on mongomock.
"""

from __future__ import annotations

import json
import math
import pickle
import tempfile
from pathlib import Path

import mongomock.gridfs
import pytest
import torch
from click.testing import CliRunner
from conftest import no_options
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strict_mongo import StrictMongoClient

from dacapo_store import Start
from dacapo_store.cli import app as cli
from dacapo_store.config_store import FileConfigStore, MongoConfigStore
from dacapo_store.configs import (
    DummyArchitectureConfig,
    DummyArrayConfig,
    DummyDatasetConfig,
    DummyTaskConfig,
    DummyTrainerConfig,
    RunConfig,
    StartConfig,
    TrainValidateDataSplitConfig,
)
from dacapo_store.errors import CriterionNotFoundError, WeightsNotFoundError
from dacapo_store.queries import leaderboard as catalog_leaderboard
from dacapo_store.queries import scores_table
from dacapo_store.weights import GridFSWeightsStore, LocalWeightsStore

mongomock.gridfs.enable_gridfs_integration()

ITERATIONS = (1, 2, 3, 4)
DATASETS = ("a", "b")
#: DaCapo's DummyTaskConfig reports these (in this order); ours may score them too, and voi
DACAPO_CRITERIA = ("frizz_level", "blipp_score")
CRITERIA = {"frizz_level": True, "blipp_score": False, "voi": False}
VALUES = st.sampled_from([0.1, 0.2, 0.3, 0.5, math.nan])

run_strategy = st.fixed_dictionaries(
    {
        "ours": st.sets(st.sampled_from(ITERATIONS)),
        "damaged": st.sets(st.sampled_from(ITERATIONS)),
        "legacy": st.sets(st.sampled_from(ITERATIONS)),
        "scores": st.dictionaries(
            st.tuples(
                st.sampled_from(sorted(CRITERIA)), st.sampled_from(DATASETS), st.sampled_from(ITERATIONS)
            ),
            VALUES,
            max_size=8,
        ),
        "dacapo_scores": st.dictionaries(
            st.tuples(st.sampled_from(DATASETS), st.sampled_from(ITERATIONS)),
            st.tuples(VALUES, VALUES),
            max_size=4,
        ),
        "pins": st.dictionaries(
            st.tuples(st.sampled_from((None, *DATASETS)), st.sampled_from(sorted(CRITERIA))),
            st.sampled_from(ITERATIONS),
            max_size=2,
        ),
        "best_files": st.dictionaries(
            st.tuples(st.sampled_from(DATASETS), st.sampled_from(DACAPO_CRITERIA)),
            st.sampled_from(ITERATIONS),
            max_size=2,
        ),
    }
)
registry_strategy = st.dictionaries(st.sampled_from(["r1", "r2", "r3"]), run_strategy, min_size=1, max_size=3)


# ---------------------------------------------------------------------------------- the oracle


def merged(desc: dict) -> tuple[dict, dict, set, set]:
    """(scores (criterion, dataset, iteration) -> value, pins, our checkpoints, loadable iterations)
    of one run as a reader must see it: ours over DaCapo's."""
    scores: dict = {}
    # DaCapo scores every validation dataset at an iteration it validated (NaN where we gave none)
    for iteration in {it for _, it in desc["dacapo_scores"]}:
        for dataset in DATASETS:
            values = desc["dacapo_scores"].get((dataset, iteration), (math.nan, math.nan))
            for criterion, value in zip(DACAPO_CRITERIA, values, strict=True):
                scores[(criterion, dataset, iteration)] = value
    scores.update(desc["scores"])
    ours = set(desc["ours"])
    damaged = desc["damaged"] & ours
    loadable = (ours - damaged) | (set(desc["legacy"]) - ours)
    pins = {(d, c): it for (d, c), it in desc["best_files"].items()}
    pins.update({key: it for key, it in desc["pins"].items() if it in ours | set(desc["legacy"])})
    return scores, pins, ours, loadable


def expected(desc: dict, criterion: str, dataset: str | None) -> tuple[int, bool, bool] | None:
    """(iteration, pinned, loadable) of the best by the rule, or None: from the description alone."""
    scores, pins, _, loadable = merged(desc)
    return by_the_rule(scores, pins, loadable, CRITERIA[criterion], criterion, dataset)


def by_the_rule(
    scores: dict, pins: dict, loadable: set, higher: bool, criterion: str, dataset: str | None
) -> tuple[int, bool, bool] | None:
    """The rule of README "Scores and bests", written out: `scores` (criterion, dataset, iteration)
    -> value, `pins` (dataset or None, criterion) -> iteration, `loadable` iterations."""
    datasets = sorted({d for (c, d, _) in scores if c == criterion})
    pin = pins.get((dataset, criterion))
    if pin is None and len(datasets) == 1 and dataset in (None, datasets[0]):
        pin = pins.get((datasets[0] if dataset is None else None, criterion))
    if pin is not None and pin in loadable:
        return pin, True, True
    if datasets and (dataset is None or dataset in datasets):
        chosen = [dataset] if dataset is not None else datasets
        means = {}
        for iteration in sorted({it for (c, _, it) in scores if c == criterion}):
            values = [scores.get((criterion, d, iteration), math.nan) for d in chosen]
            values = [v for v in values if not math.isnan(v)]
            if values:
                means[iteration] = sum(values) / len(values)
        sign = -1 if higher else 1
        ranked = sorted(means, key=lambda it: (sign * means[it], it))
        for iteration in ranked:
            if iteration in loadable:
                return iteration, False, True
        if ranked:
            return ranked[0], False, False
    if pin is not None:
        return pin, True, False
    return None


# ---------------------------------------------------------------------------------- building it


def run_config(name: str) -> RunConfig:
    array = DummyArrayConfig("array")
    return RunConfig(
        task_config=DummyTaskConfig("task", embedding_dims=2, detection_threshold=0.5),
        architecture_config=DummyArchitectureConfig("arch", num_in_channels=1, num_out_channels=1),
        trainer_config=DummyTrainerConfig("trainer", batch_size=1, learning_rate=0.1, mirror_augment=False),
        datasplit_config=TrainValidateDataSplitConfig(
            "split",
            train_configs=[DummyDatasetConfig("train", raw_config=array)],
            validate_configs=[DummyDatasetConfig(d, raw_config=array) for d in DATASETS],
        ),
        name=name,
        repetition=0,
        num_iterations=10,
    )


def build(backend: str, root: Path, registry: dict, holder: list):
    """The registry in a config store and a weights store (and DaCapo's layout beside them)."""
    runs_dir = root / "runs"
    (runs_dir / "configs").mkdir(parents=True)
    if backend == "files":
        configs, weights = FileConfigStore(runs_dir / "configs"), LocalWeightsStore(runs_dir)
        db = None
    else:
        server = StrictMongoClient()
        holder[:] = [server]
        configs = MongoConfigStore(client=server, db_name="faces")
        weights = GridFSWeightsStore(client=server, db_name="faces", dacapo_runs_dir=runs_dir)
        db = server["faces"]
    for name, desc in registry.items():
        configs.store_run_config(run_config(name))
        for iteration in sorted(desc["ours"]):
            weights.store_weights(name, iteration, {"w": torch.full((1,), float(iteration))})
        for (criterion, dataset, iteration), value in desc["scores"].items():
            weights.store_validation_scores(name, iteration, {criterion: value}, dataset=dataset)
        for (dataset, criterion), iteration in desc["pins"].items():
            if iteration in desc["ours"] | desc["legacy"]:
                _legacy(runs_dir, name, desc)  # a pin needs the checkpoint there first
                weights.store_best(name, iteration, dataset, criterion)
        _legacy(runs_dir, name, desc)
        for (dataset, criterion), iteration in desc["best_files"].items():
            folder = runs_dir / name / "checkpoints" / dataset
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{criterion}.json").write_text(json.dumps({"iteration": iteration}))
        documents = [
            {
                "run_name": name,
                "iteration": iteration,
                "scores": [
                    [list(desc["dacapo_scores"].get((d, iteration), (math.nan, math.nan)))] for d in DATASETS
                ],
            }
            for iteration in sorted({it for _, it in desc["dacapo_scores"]})
        ]
        if documents and db is None:
            folder = runs_dir / "stats" / "validation_scores"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(pickle.dumps(documents, protocol=4))
        elif documents:
            db["validation_scores"].insert_many([{**d} for d in documents])
        for iteration in sorted(desc["damaged"] & desc["ours"]):
            record = weights.metadata(name, iteration)["blobs"]["model"]
            weights.delete_blob(name, record["name"])
        if desc["damaged"] & desc["ours"]:
            weights.verify(name)  # records the damage: what every reader then skips
    return configs, weights, runs_dir


def _legacy(runs_dir: Path, name: str, desc: dict) -> None:
    folder = runs_dir / name / "checkpoints" / "iterations"
    folder.mkdir(parents=True, exist_ok=True)
    for iteration in desc["legacy"]:
        (folder / str(iteration)).write_bytes(b"a DaCapo checkpoint (never loaded here)")


# ---------------------------------------------------------------------------------- the faces


def faces(configs, weights, registry, keys, cli_args: list[str] | None) -> dict:
    """(face, run, criterion, dataset) -> (iteration, pinned or None, loadable or None), or None,
    for the runs of `registry` and each (criterion, dataset or None) of `keys`. `cli_args`: how
    the command line reaches the stores (None: no command line)."""
    from starlette.testclient import TestClient

    from dacapo_store.queries import RunCatalog
    from dacapo_store.web import create_app

    out: dict = {}
    catalog = RunCatalog(configs, weights, recheck=0)
    for run in registry:
        for criterion, dataset in keys:
            try:
                choice = weights.best_choice(run, criterion, dataset)
                out[("best_choice", run, criterion, dataset)] = (choice.iteration, choice.pinned, True)
            except (CriterionNotFoundError, WeightsNotFoundError):
                out[("best_choice", run, criterion, dataset)] = None
            if dataset is None:
                start = Start(StartConfig(run, criterion), weights)
                try:
                    out[("Start", run, criterion, None)] = (start.iteration(), None, True)
                except (CriterionNotFoundError, WeightsNotFoundError):
                    out[("Start", run, criterion, None)] = None
        for row in scores_table(weights, run):
            if row.best:
                out[("scores", run, row.criterion, row.dataset)] = (row.iteration, None, None)
    for criterion, dataset in keys:
        for entry in weights.leaderboard(criterion, dataset=dataset):
            out[("WeightsStore.leaderboard", entry.run, criterion, dataset)] = (
                entry.iteration,
                entry.pinned,
                entry.loadable,
            )
        for entry in catalog_leaderboard(weights, criterion, dataset=dataset, catalog=catalog):
            out[("queries.leaderboard", entry.run, criterion, dataset)] = (
                entry.iteration,
                entry.pinned,
                entry.loadable,
            )
    # `weights list` on the command line (its JSON marks: loadable bests only)
    for run in registry if cli_args is not None else ():
        argv = [*cli_args, "weights", "list", run, "--json"]
        result = CliRunner().invoke(cli, argv, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        for entry in json.loads(result.stdout):
            for mark in entry["bests"]:
                key = ("weights list", run, mark["criterion"], mark["dataset"])
                out[key] = (entry["iteration"], mark["pinned"], True)
    # the web API
    with TestClient(create_app(configs, weights, recheck=0)) as client:
        known = client.get("/api/v1/runs").json()["criteria"]
        for criterion, dataset in keys:
            if criterion not in known or (dataset is not None and dataset not in known[criterion]):
                continue
            params = {"criterion": criterion, "limit": 500, **({"dataset": dataset} if dataset else {})}
            for path, face in (("/api/v1/runs", "web runs"), ("/api/v1/leaderboard", "web leaderboard")):
                response = client.get(path, params=params)
                assert response.status_code == 200, response.text
                for row in response.json()["rows"]:
                    best = row["best"]
                    if best is not None:
                        out[(face, row["name"], criterion, dataset)] = (
                            best["iteration"],
                            best["pinned"],
                            best["loadable"],
                        )
        for run in registry:
            page = client.get(f"/api/v1/runs/{run}")
            assert page.status_code == 200, page.text
            for curve in page.json()["curves"]:
                best = curve["best"]
                if best is not None:
                    key = ("web run page", run, curve["criterion"], curve["dataset"])
                    out[key] = (best["iteration"], best["pinned"], best["loadable"])
            for row in page.json()["checkpoints"]:
                for mark in row["best_for"]:
                    criterion, dataset = mark.split("/", 1)
                    key = ("web run page marks", run, criterion, None if dataset == "all" else dataset)
                    out[key] = (row["iteration"], None, True)
    return out


ACROSS_RUNS = ("WeightsStore.leaderboard", "queries.leaderboard", "web runs", "web leaderboard")


def check(registry: dict, found: dict) -> None:
    def oracle(run, criterion, dataset):
        return expected(registry[run], criterion, dataset)

    def scored(run):
        return merged(registry[run])[0]

    keys = [(c, d) for c in CRITERIA for d in (None, *DATASETS)]
    check_faces(list(registry), keys, oracle, scored, found, repr(registry))


def check_faces(runs, keys, oracle, scored, found: dict, about: str, with_cli: bool = True) -> None:
    """Every face's answer in `found` against `oracle(run, criterion, dataset)`; `scored(run)`:
    the run's (criterion, dataset, iteration) -> score, for the faces that mark scored rows only."""
    by_key: dict = {}
    for (face, run, criterion, dataset), answer in found.items():
        by_key.setdefault((run, criterion, dataset), {})[face] = answer
    for run in runs:
        for criterion, dataset in keys:
            want = oracle(run, criterion, dataset)
            said = by_key.get((run, criterion, dataset), {})
            context = f"{run} {criterion} {dataset} of {about}"
            loadable_only = ("best_choice", "Start", "weights list", "web run page marks")
            for face in ACROSS_RUNS:
                assert said.get(face) == want, (face, said.get(face), want, context)
            for face in loadable_only:
                if (face == "Start" and dataset is not None) or (face == "weights list" and not with_cli):
                    continue
                got = said.get(face)
                answer = want if want is not None and want[2] else None
                if got is None or answer is None:
                    assert got is None and answer is None, (face, got, answer, context)
                else:
                    assert got[0] == answer[0], (face, got, answer, context)
                    if got[1] is not None:
                        assert got[1] == answer[1], (face, got, answer, context)
            if dataset is not None:  # marks on the rows and curves of that dataset's scores
                scores = scored(run)
                curve = any(c == criterion and d == dataset for c, d, _ in scores)
                row = want is not None and (criterion, dataset, want[0]) in scores
                for face, shown in (("scores", row), ("web run page", curve)):
                    got = said.get(face)
                    answer = want[0] if want and shown else None
                    assert (got[0] if got else None) == answer, (face, got, want, context)


@pytest.mark.parametrize("backend", ["files", "mongomock"])
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(registry=registry_strategy)
def test_every_face_gives_the_same_best(backend, registry, monkeypatch):
    holder: list = []
    monkeypatch.setattr("dacapo_store.mongo.MongoClient", lambda *a, **k: holder[0].sibling())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        monkeypatch.setenv("XDG_CACHE_HOME", str(root / "cache"))
        monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(no_options(root / "options")))
        monkeypatch.setenv("DACAPO_WEIGHTS_STORE", "gridfs" if backend == "mongomock" else "files")
        configs, weights, runs_dir = build(backend, root, registry, holder)
        monkeypatch.setenv("DACAPO_RUNS_BASE_DIR", str(runs_dir))
        keys = [(c, d) for c in CRITERIA for d in (None, *DATASETS)]
        if backend == "files":
            args = ["--store", f"files:{runs_dir}"]
        else:
            args = ["--store", "mongodb://localhost:27017", "--db", "faces"]
        check(registry, faces(configs, weights, registry, keys, args))
