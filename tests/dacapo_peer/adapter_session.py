"""Run by a Python that imports real DaCapo 0.3.5, with dacapo_store on its path: DaCapo trains,
validates, resumes, starts and applies through `dacapo_store.dacapo_adapter`.

Usage: adapter_session.py REQUEST.json. The request names the backend ("files": a folder;
"mongo": configs in MongoDB and weights in GridFS, on a mongomock client that the session dumps
as canonical extended JSON at the end), the folder (DaCapo's runs_base_dir) and the run names.
Prints a JSON report: every check made here ({"name", "ok", "detail"}) and what the test process
needs to check our own command line and dashboard against (bests, scores, losses).

Two things of DaCapo 0.3.5 are set aside here, as `restore_with_dacapo.py` does: its `Options`
can't be built under the pinned cattrs (no structure hook for `UPath`), so `Options.instance`
returns a `DaCapoConfig` made directly (DaCapo's compute context and array store read it); and
its `DummyTrainer` never advances past an iteration `train` breaks at for validation (an endless
loop), so `dacapo.train` runs with one validation at the end and the multi-checkpoint session
below makes `train.py`'s and `validate.py`'s store calls itself, in their order.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import random
import sys
import time
from pathlib import Path

REPORT: dict = {"checks": [], "expected": {}}
#: the registry: DaCapo's runs_base_dir, and the mongomock client for the MongoDB backend
WHERE: dict = {}


def check(name: str, ok: bool, detail: object = "") -> None:
    REPORT["checks"].append({"name": name, "ok": bool(ok), "detail": str(detail)[:2000]})


def same(a, b) -> bool:
    """Equal, NaN equal to NaN, through nested lists."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b)


def main() -> None:
    request = json.loads(Path(sys.argv[1]).read_text())
    base = Path(request["base"])
    base.mkdir(parents=True, exist_ok=True)
    options = {"type": "files", "runs_base_dir": str(base)}
    client = None
    if request["backend"] == "mongo":
        import mongomock
        import mongomock.gridfs

        import dacapo_store.mongo

        mongomock.gridfs.enable_gridfs_integration()
        client = mongomock.MongoClient()
        dacapo_store.mongo.MongoClient = lambda *args, **kwargs: client
        options.update(
            type="mongo",
            mongo_db_host="mongodb://localhost:27017",
            mongo_db_name="dacapo_live",
            weights_store="gridfs",
        )
    WHERE.update(base=base, client=client)
    (base / "dacapo.yaml").write_text(json.dumps(options))
    os.environ["DACAPO_OPTIONS_FILE"] = str(base / "dacapo.yaml")

    import torch

    torch.set_num_threads(1)  # tiny models: threads only contend on a busy machine
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):  # DaCapo prints as it works
        session(request, base)
    if client is not None:
        from bson import json_util
        from bson.json_util import CANONICAL_JSON_OPTIONS

        db = client["dacapo_live"]
        dump = {c: list(db[c].find({})) for c in db.list_collection_names()}
        Path(request["dump"]).write_text(json_util.dumps(dump, json_options=CANONICAL_JSON_OPTIONS))
    print(json.dumps(REPORT))


def session(request: dict, base: Path) -> None:
    import dacapo
    import dacapo.store.create_store as create_store
    from dacapo.options import DaCapoConfig, Options
    from upath import UPath

    Options.instance = classmethod(
        lambda cls, **kwargs: DaCapoConfig(
            runs_base_dir=UPath(base), compute_context={"type": "LocalTorch", "config": {"device": "cpu"}}
        )
    )
    originals = {
        n: getattr(create_store, n)
        for n in ("create_config_store", "create_weights_store", "create_stats_store", "create_array_store")
    }

    from dacapo_store import dacapo_adapter

    dacapo_adapter.install()
    modules = [dacapo.train, dacapo.validate, dacapo.apply, dacapo.predict, create_store]
    bound = {
        m.__name__: {n: getattr(m, n) is not originals[n] for n in originals if hasattr(m, n)}
        for m in modules
    }
    check(
        "every DaCapo module's factories are the adapter's, create_array_store stays DaCapo's",
        all(v is (n != "create_array_store") for b in bound.values() for n, v in b.items()),
        bound,
    )
    from dacapo.store.config_store import ConfigStore
    from dacapo.store.config_store import DuplicateNameError as DacapoDuplicateNameError
    from dacapo.store.stats_store import StatsStore
    from dacapo.store.weights_store import WeightsStore

    stores = (
        create_store.create_config_store(),
        create_store.create_weights_store(),
        create_store.create_stats_store(),
    )
    check(
        "the stores implement DaCapo's interfaces",
        all(isinstance(s, c) for s, c in zip(stores, (ConfigStore, WeightsStore, StatsStore), strict=True)),
        stores,
    )

    trained_by_dacapo(request["dummy_run"])
    session_run(request["run"], request["datasets"], request["start_run"], DacapoDuplicateNameError)
    legacy_checkpoint(base)
    create_store.create_config_store().store_run_config(
        dummy_config("trained_from_the_command_line", 100, 100)
    )
    dacapo_adapter.uninstall()
    check(
        "uninstall gives DaCapo its factories back",
        all(getattr(m, n) is originals[n] for m in modules for n in originals if hasattr(m, n)),
    )
    command_line(modules, originals)


def command_line(modules, originals) -> None:
    """`dacapo-store dacapo train -r RUN`: DaCapo's own command line, through the adapter."""
    from click.testing import CliRunner

    from dacapo_store.cli import app
    from dacapo_store.weights import create_weights_store

    result = CliRunner().invoke(app, ["dacapo", "--help"])
    check(
        "dacapo-store dacapo --help shows DaCapo's commands",
        "train" in result.output and "apply" in result.output,
    )
    result = CliRunner().invoke(app, ["dacapo", "train", "-r", "trained_from_the_command_line"])
    ours = create_weights_store()
    check(
        "dacapo-store dacapo train -r RUN trains into our registry",
        result.exit_code == 0
        and ours.latest_iteration("trained_from_the_command_line") == 100
        and len(ours.retrieve_training_stats("trained_from_the_command_line")) == 100,
        (result.exit_code, result.output[-1500:]),
    )
    check(
        "and gives DaCapo its factories back when it ends",
        all(getattr(m, n) is originals[n] for m in modules for n in originals if hasattr(m, n)),
    )


# ------------------------------------------------------------------------------ DaCapo's own train


def dummy_config(name: str, num_iterations: int, validation_interval: int, task=None, start=None):
    from dacapo.experiments import RunConfig
    from dacapo.experiments.architectures import DummyArchitectureConfig
    from dacapo.experiments.datasplits import DummyDataSplitConfig
    from dacapo.experiments.datasplits.datasets import DummyDatasetConfig
    from dacapo.experiments.datasplits.datasets.arrays import DummyArrayConfig
    from dacapo.experiments.tasks import DummyTaskConfig
    from dacapo.experiments.trainers import DummyTrainerConfig

    return RunConfig(
        task_config=task or DummyTaskConfig(name="dummy_task", embedding_dims=3, detection_threshold=0.5),
        architecture_config=DummyArchitectureConfig(
            name="dummy_arch_1_3", num_in_channels=1, num_out_channels=3
        ),
        trainer_config=DummyTrainerConfig(
            name="dummy_trainer", batch_size=1, learning_rate=1e-3, mirror_augment=False
        ),
        datasplit_config=DummyDataSplitConfig(
            name="dummy_split",
            train_config=DummyDatasetConfig(
                name="dummy_train", raw_config=DummyArrayConfig(name="dummy_raw")
            ),
        ),
        name=name,
        repetition=0,
        num_iterations=num_iterations,
        validation_interval=validation_interval,
        start_config=start,
    )


def trained_by_dacapo(name: str) -> None:
    """`dacapo.train` itself: a crash at iteration 150, a resume, and a run that is done."""
    import dacapo
    from dacapo.experiments.trainers.dummy_trainer import DummyTrainer
    from dacapo.store.create_store import create_config_store, create_stats_store, create_weights_store

    create_config_store().store_run_config(dummy_config(name, 200, 200))
    iterate = DummyTrainer.iterate

    def crashing(self, num_iterations, model, optimizer, device):
        for stats in iterate(self, num_iterations, model, optimizer, device):
            if stats.iteration == 150:
                raise RuntimeError("simulated crash at iteration 150")
            yield stats

    DummyTrainer.iterate = crashing
    try:
        dacapo.train(name)
    except RuntimeError as exc:
        check("dacapo.train crashes where the fault is injected", "simulated crash" in str(exc), exc)
    finally:
        DummyTrainer.iterate = iterate
    stats = create_stats_store().retrieve_training_stats(name)
    check(
        "after the crash: the stats DaCapo stored every 100 iterations, no weights",
        [s.iteration for s in stats.iteration_stats] == list(range(100))
        and create_weights_store().latest_iteration(name) is None,
        stats.trained_until(),
    )
    dacapo.train(name)  # resumes (from scratch: no checkpoint) and finishes
    stats = create_stats_store().retrieve_training_stats(name)
    check(
        "dacapo.train resumed and finished: 200 iterations of DaCapo's own stats",
        [(s.iteration, s.loss, s.time) for s in stats.iteration_stats]
        == [(i, 1.0 / (i + 1), 0.1) for i in range(200)],
        stats.trained_until(),
    )
    weights = create_weights_store()
    check("its checkpoint at 200", weights.latest_iteration(name) == 200, weights.latest_iteration(name))
    from dacapo.experiments import Run

    run = Run(create_config_store().retrieve_run_config(name))
    weights.load_weights(run, 200)  # DaCapo's own WeightsStore.load_weights: model and optimizer
    check("DaCapo's load_weights loads the checkpoint", run.optimizer.state_dict()["state"] != {})
    dacapo.train(name)  # trained until 200 already: loads the latest weights, trains nothing
    check(
        "a finished run trains nothing more",
        create_stats_store().retrieve_training_stats(name).trained_until() == 200,
    )
    dacapo.validate(name, 200)  # reads stats, scores and weights (the dummy split has no validation data)
    check("dacapo.validate read the run back", True)
    REPORT["expected"]["dummy_run"] = {"iterations": 200, "checkpoint": 200}


# ------------------------------------------------------------------ train.py's calls, in their order


def session_run(name: str, dataset_names: list[str], start_name: str, DacapoDuplicateNameError) -> None:
    import torch
    from dacapo.experiments import Run, TrainingIterationStats, ValidationIterationScores
    from dacapo.experiments.datasplits.datasets import DummyDataset, DummyDatasetConfig
    from dacapo.experiments.datasplits.datasets.arrays import DummyArrayConfig
    from dacapo.experiments.tasks import DistanceTaskConfig
    from dacapo.experiments.tasks.post_processors import ThresholdPostProcessorParameters
    from dacapo.experiments.validation_scores import ValidationScores
    from dacapo.store.create_store import create_config_store, create_stats_store, create_weights_store

    task = DistanceTaskConfig(
        name="dist_mito&er&nuc",
        channels=["mito", "er", "nuc"],
        clip_distance=40.0,
        tol_distance=40.0,
        scale_factor=80.0,
    )
    config = dummy_config(name, 600, 200, task=task)
    configs = create_config_store()
    configs.store_run_config(config)
    configs.store_run_config(config)  # every launch stores it again: a no-op
    check("a RunConfig comes back equal", configs.retrieve_run_config(name) == config)
    from dacapo.store.converter import converter as dacapo_converter

    document = dacapo_converter.unstructure(config)
    if WHERE["client"] is None:  # DaCapo's FileConfigStore compares what yaml.full_load gives
        import yaml

        stored = yaml.full_load((WHERE["base"] / "configs" / "runs" / f"{name}.yaml").read_text())
        check("the stored run document is DaCapo's own (as DaCapo reads it back)", stored == document)
    else:  # DaCapo's MongoConfigStore compares BSON bytes
        import bson

        stored = WHERE["client"]["dacapo_live"]["runs"].find_one({"name": name}, {"_id": False})
        check(
            "the stored run document is DaCapo's own, byte for byte",
            bson.encode(stored) == bson.encode(document),
        )
    check(
        "names",
        name in configs.retrieve_run_config_names(task_names=["dist_mito&er&nuc"]),
        configs.retrieve_run_config_names(),
    )
    check("its task is stored with it", configs.retrieve_task_config("dist_mito&er&nuc") == task)
    import attrs

    longer = attrs.evolve(config, num_iterations=800)
    configs.store_run_config(longer, ignore=["num_iterations"])
    check(
        "DaCapo's ignore keys: no error, the stored run unchanged",
        configs.retrieve_run_config(name) == config,
    )
    try:
        configs.store_run_config(longer)
        check("a different run under the name is refused", False)
    except DacapoDuplicateNameError as exc:
        check(
            "a different run under the name is refused, as DaCapo's DuplicateNameError",
            "num_iterations" in str(exc),
            exc,
        )

    datasets = [
        DummyDataset(DummyDatasetConfig(name=d, raw_config=DummyArrayConfig(name="raw")))
        for d in dataset_names
    ]
    parameters = [ThresholdPostProcessorParameters(id=i, threshold=t) for i, t in enumerate((64, 127, 191))]
    rng = random.Random(7)
    sent_scores: dict[int, list] = {}
    sent_stats: dict[int, tuple] = {}
    states: dict[int, dict] = {}

    def attach_scores(run) -> None:
        # DaCapo's Run builds these from its datasplit's validation datasets (the dummy split has
        # none): the same object, with real DaCapo datasets and post-processing parameters
        run._validation_scores = ValidationScores(parameters, datasets, run.task.evaluation_scores)

    def validate(run, iteration: int) -> None:
        """validate.py's validate_run: every dataset x parameter set x criterion, then one store."""
        criteria = run.validation_scores.criteria
        array = [
            [
                [(math.nan if rng.random() < 0.05 else round(rng.random(), 6)) for _ in criteria]
                for _ in parameters
            ]
            for _ in datasets
        ]
        sent_scores[iteration] = array
        run.validation_scores.add_iteration_scores(ValidationIterationScores(iteration, array))
        create_stats_store().store_validation_iteration_scores(run.name, run.validation_scores)

    def train(
        run, stats_store, weights_store, start: int, stop: int, crash_at: int | None, seed: int
    ) -> None:
        """train.py's loop: stats every 100 iterations or at a validation, weights and validation
        at each validation interval."""
        torch.manual_seed(seed)
        trained_until = start
        while trained_until < stop:
            chunk = min(100, stop - trained_until)
            for iteration in range(trained_until, trained_until + chunk):
                if iteration == crash_at:
                    return
                t0 = time.perf_counter()
                run.optimizer.zero_grad()
                loss = run.model(torch.randn(1, 1, 40, 20, 20)).square().mean()
                loss.backward()
                run.optimizer.step()
                stats = TrainingIterationStats(
                    iteration=iteration, loss=loss.item(), time=time.perf_counter() - t0
                )
                run.training_stats.add_iteration_stats(stats)
                sent_stats[iteration] = (stats.loss, stats.time)
                if (iteration + 1) % run.validation_interval == 0:
                    break
            trained_until = run.training_stats.trained_until()
            stats_store.store_training_stats(run.name, run.training_stats)
            if trained_until % run.validation_interval == 0:
                weights_store.store_weights(run, trained_until)
                states[trained_until] = {k: v.clone() for k, v in run.model.state_dict().items()}
                validate(run, trained_until)
                stats_store.store_validation_iteration_scores(run.name, run.validation_scores)

    # first launch: crashes at iteration 350 (stats stored to 299, a checkpoint at 200, validated there)
    run = Run(configs.retrieve_run_config(name))
    attach_scores(run)
    stats_store, weights_store = create_stats_store(), create_weights_store()
    run.training_stats = stats_store.retrieve_training_stats(run.name)
    run.validation_scores.scores = stats_store.retrieve_validation_iteration_scores(run.name)
    check("a new run has no weights", weights_store.latest_iteration(run) is None)
    train(run, stats_store, weights_store, 0, run.train_until, crash_at=350, seed=1)
    first = dict(sent_stats)

    # second launch: train.py's resume from the latest checkpoint
    run = Run(create_config_store().retrieve_run_config(name))
    attach_scores(run)
    stats_store, weights_store = create_stats_store(), create_weights_store()
    run.training_stats = stats_store.retrieve_training_stats(run.name)
    run.validation_scores.scores = stats_store.retrieve_validation_iteration_scores(run.name)
    back = {s.iteration: (s.loss, s.time) for s in run.training_stats.iteration_stats}
    check("training stats read back as stored", back == {i: first[i] for i in range(300)}, sorted(back)[-3:])
    check(
        "validation arrays read back exactly as stored",
        [s.iteration for s in run.validation_scores.scores] == [200]
        and all(same(s.scores, sent_scores[s.iteration]) for s in run.validation_scores.scores),
    )
    trained_until = run.training_stats.trained_until()
    latest = weights_store.latest_iteration(run)
    check("resume point: trained until 300, latest checkpoint 200", (trained_until, latest) == (300, 200))
    run.training_stats.delete_after(latest)
    run.validation_scores.delete_after(latest)
    weights = weights_store.retrieve_weights(run, iteration=latest)
    check(
        "the checkpoint loads as it was stored",
        all(torch.equal(weights.model[k], v) for k, v in states[200].items()),
    )
    run.model.load_state_dict(weights.model)
    sent_stats.clear()
    train(run, stats_store, weights_store, latest, run.train_until, crash_at=None, seed=2)
    second = dict(sent_stats)

    stats = {
        s.iteration: (s.loss, s.time)
        for s in create_stats_store().retrieve_training_stats(name).iteration_stats
    }
    expected = {**{i: first[i] for i in range(300)}, **{i: second[i] for i in range(300, 600)}}
    check(
        "after the resume: the first values of the iterations trained again are kept, the rest appended",
        stats == expected and any(first[i] != second[i] for i in range(200, 300)),
        [(i, stats.get(i), expected.get(i)) for i in (199, 200, 299, 300, 599)],
    )
    arrays = create_stats_store().retrieve_validation_iteration_scores(name)
    check(
        "every validation array reads back exactly",
        [a.iteration for a in arrays] == [200, 400, 600]
        and all(same(a.scores, sent_scores[a.iteration]) for a in arrays),
        [a.iteration for a in arrays],
    )

    # bests, as DaCapo's get_best and its apply see them, with no store_best anywhere
    evaluation = run.task.evaluation_scores
    criteria = list(run.validation_scores.criteria)
    best_value = {}  # (iteration, dataset, criterion) -> best over parameters
    for iteration, array in sent_scores.items():
        for d, rows in zip(dataset_names, array, strict=True):
            for c_index, criterion in enumerate(criteria):
                values = [r[c_index] for r in rows if not math.isnan(r[c_index])]
                if values:
                    higher = evaluation.higher_is_better(criterion)
                    best_value[(iteration, d, criterion)] = max(values) if higher else min(values)
    expected_best = {}
    for d in dataset_names:
        for criterion in criteria:
            scored = [
                (it, best_value[(it, d, criterion)])
                for it in sorted(sent_scores)
                if (it, d, criterion) in best_value
            ]
            higher = evaluation.higher_is_better(criterion)
            expected_best[f"{d}/{criterion}"] = sorted(
                scored, key=lambda p: (-p[1] if higher else p[1], p[0])
            )[0][0]
    weights_store = create_weights_store()
    got = {
        key: weights_store.retrieve_best(name, key.rsplit("/", 1)[0], key.rsplit("/", 1)[1])
        for key in expected_best
    }
    wrong = {k: (got[k], v) for k, v in expected_best.items() if got[k] != v}
    check(
        f"retrieve_best(run, dataset, criterion), {len(got)} pairs: best over parameters, then iterations",
        not wrong,
        wrong,
    )

    # apply.py: retrieve_best(run_name, validation_dataset, criterion), then retrieve_weights
    criterion = "mito__f1_score"
    iteration = weights_store.retrieve_best(name, datasets[1], criterion)  # a DaCapo Dataset works too
    applied = weights_store.retrieve_weights(name, iteration)
    check(
        "apply's retrieve_best and retrieve_weights",
        iteration == expected_best[f"{dataset_names[1]}/{criterion}"]
        and all(torch.equal(applied.model[k], v) for k, v in states[iteration].items()),
        iteration,
    )
    # DaCapo's own load_best (retrieve_best, then load_weights) and the adapter's _load_best
    loaded = Run(create_config_store().retrieve_run_config(name))
    weights_store.load_best(loaded, dataset_names[0], criterion)
    best_there = expected_best[f"{dataset_names[0]}/{criterion}"]
    check(
        "load_best loads the best checkpoint of the dataset into the run",
        all(torch.equal(loaded.model.state_dict()[k], v) for k, v in states[best_there].items()),
        best_there,
    )
    # a pin (DaCapo's store_best) wins over the computed best
    weights_store.store_best(name, 400, dataset_names[0], "nuc__voi")
    check("store_best pins", weights_store.retrieve_best(name, dataset_names[0], "nuc__voi") == 400)

    # Start: a second run from the first run's best by criterion (mean over the datasets)
    means = {}
    for it in sorted(sent_scores):
        values = [best_value[(it, d, criterion)] for d in dataset_names if (it, d, criterion) in best_value]
        if values:
            means[it] = sum(values) / len(values)
    by_mean = sorted(means, key=lambda it: (-means[it], it))[0]
    from dacapo.experiments.starts import StartConfig

    start_config = dummy_config(
        start_name, 100, 100, task=task, start=StartConfig(run=name, criterion=criterion)
    )
    create_config_store().store_run_config(start_config)
    started = Run(create_config_store().retrieve_run_config(start_name))  # DaCapo's Start runs here
    check(
        "DaCapo's Start loads the first run's best by criterion (on torch >= 2.6)",
        all(torch.equal(started.model.state_dict()[k], v) for k, v in states[by_mean].items()),
        by_mean,
    )
    loaded = Run(create_config_store().retrieve_run_config(name))
    weights_store._load_best(loaded, criterion)
    check(
        "_load_best loads the best by criterion (the mean over datasets)",
        all(torch.equal(loaded.model.state_dict()[k], v) for k, v in states[by_mean].items()),
    )
    for key in ("latest", "400"):
        w = weights_store._retrieve_weights(name, key)
        it = 600 if key == "latest" else 400
        check(f"_retrieve_weights by {key!r}", all(torch.equal(w.model[k], v) for k, v in states[it].items()))
    REPORT["expected"]["run"] = {
        "name": name,
        "start_run": start_name,
        "criterion": criterion,
        "best_by_mean": by_mean,
        "best": expected_best,
        "checkpoints": sorted(states),
        "scores": {
            f"{it}/{d}": best_value.get((it, d, criterion))
            for it in sorted(sent_scores)
            for d in dataset_names
        },
        "training": sorted([i, *expected[i]] for i in expected),
        "criteria": criteria,
    }


def legacy_checkpoint(base: Path) -> None:
    """A checkpoint DaCapo's own LocalWeightsStore pickled loads through our restricted unpickler."""
    import torch
    from dacapo.experiments import Run
    from dacapo.store.create_store import create_weights_store
    from dacapo.store.local_weights_store import LocalWeightsStore

    run = Run(dummy_config("legacy_dacapo_run", 100, 100))
    LocalWeightsStore(base).store_weights(run, 10)  # DaCapo's own: torch.save of a Weights object
    weights = create_weights_store().retrieve_weights("legacy_dacapo_run", 10)
    check(
        "DaCapo's pickled checkpoint loads without unpickling code",
        all(torch.equal(weights.model[k], v) for k, v in run.model.state_dict().items())
        and weights.optimizer["param_groups"][0]["lr"] == run.optimizer.state_dict()["param_groups"][0]["lr"],
    )
    # DaCapo's CosemStart puts a downloaded checkpoint under a name and starts from it by that name
    folder = base / "legacy_dacapo_run" / "checkpoints" / "iterations"
    (folder / "setup04").write_bytes((folder / "10").read_bytes())
    named = create_weights_store()._retrieve_weights("legacy_dacapo_run", "setup04")
    check(
        "a checkpoint put there by name loads by that name",
        all(torch.equal(named.model[k], v) for k, v in run.model.state_dict().items()),
    )
    try:
        create_weights_store()._retrieve_weights("legacy_dacapo_run", "../legacy_dacapo_run/10")
        check("a key is never a path", False)
    except ValueError as exc:
        check("a key is never a path", "criterion" in str(exc), exc)
    REPORT["expected"]["legacy_checkpoints"] = [
        "legacy_dacapo_run/checkpoints/iterations/10",
        "legacy_dacapo_run/checkpoints/iterations/setup04",
    ]


if __name__ == "__main__":
    main()
