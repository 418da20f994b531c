"""Ours and DaCapo's side by side: what we add lands in our places; DaCapo's stays as it was.

The `layout` fixture asserts after each test that DaCapo's files and documents did not change.
"""

from __future__ import annotations

import pytest
import torch
from conftest import no_options

from dacapo_store import TrainingIterationStats, TrainingStatsConflictError

from .conftest import MANIFEST

RUN = "hela_semantic_mito&er&nuc_8nm_dist_mito&er&nuc_tiny_unet_lab_gp_aug_lab__0"
DATASET = "jrc_hela-2_[mito&er]_jrc_hela-2_[mito&er]_mito_er_nuc_8nm_gt_mito&er&nuc_8nm"


def test_our_scores_join_dacapos_and_win_where_both_have_one(layout):
    store = layout.store
    dacapo_value = store.retrieve_validation_scores(RUN)["mito__dice"][DATASET][5]
    store.store_validation_scores(
        RUN, 5, {"mito__dice": 0.5, "my_metric": 1.0}, dataset=DATASET, higher_is_better={"my_metric": True}
    )
    scores = store.retrieve_validation_scores(RUN)
    assert scores["mito__dice"][DATASET][5] == 0.5 != dacapo_value
    assert scores["mito__dice"][DATASET][10] > 0.9  # DaCapo's
    assert scores["my_metric"] == {DATASET: {5: 1.0}}
    assert "my_metric" in store.criteria(RUN) and "mito__voi" in store.criteria(RUN)


def test_our_pin_wins_over_dacapos_best_file(layout):
    assert layout.store.retrieve_best(RUN, "mito__dice", DATASET) == 10
    layout.store.store_best(RUN, 15, DATASET, "mito__dice")
    assert layout.store.retrieve_best(RUN, "mito__dice", DATASET) == 15


def test_our_checkpoints_join_dacapos(layout):
    model = torch.nn.Linear(2, 2)
    layout.store.store_weights(RUN, 25, model)
    assert layout.store.iterations(RUN) == [5, 10, 15, 20, 25]
    assert layout.store.latest_iteration(RUN) == 25
    assert layout.store.retrieve_weights(RUN, 5).metadata is None  # still DaCapo's


def test_prune_never_deletes_dacapos_checkpoints(layout):
    layout.store.store_weights(RUN, 25, torch.nn.Linear(2, 2))
    layout.store.store_weights(RUN, 30, torch.nn.Linear(2, 2))

    class NoStarts:
        def starts_from(self, run):
            return []

    assert layout.store.prune(RUN, keep_last=1, config_store=NoStarts()) == [25]
    assert layout.store.iterations(RUN) == [5, 10, 15, 20, 30]


def test_our_training_stats_continue_dacapos(layout):
    dacapo = layout.store.retrieve_training_stats(RUN)
    assert len(dacapo) == 20
    assert layout.store.store_training_stats(RUN, [TrainingIterationStats(20, 1.0, 0.1)]) == 1
    assert layout.store.store_training_stats(RUN, dacapo) == 0  # DaCapo's own values again: nothing new
    assert layout.store.retrieve_training_stats(RUN) == [*dacapo, TrainingIterationStats(20, 1.0, 0.1)]


def test_other_values_for_a_dacapo_iteration_are_refused(layout):
    with pytest.raises(TrainingStatsConflictError, match="nothing was stored"):
        layout.store.store_training_stats(RUN, {3: {"loss": 0.0, "time": 0.0}})
    assert len(layout.store.retrieve_training_stats(RUN)) == 20


def test_deleting_training_stats_leaves_dacapos(layout):
    layout.store.store_training_stats(RUN, {20: {"loss": 1.0, "time": 0.1}})
    layout.store.delete_training_stats(RUN)
    assert [s.iteration for s in layout.store.retrieve_training_stats(RUN)] == list(range(20))


def test_our_documents_go_to_collections_dacapo_does_not_use(mongo_layout):
    layout = mongo_layout
    counts = {name: layout.db[name].count_documents({}) for name in ("validation_scores", "training_stats")}
    layout.store.store_validation_scores(RUN, 5, {"mito__dice": 0.5}, dataset=DATASET)
    layout.store.store_training_stats(RUN, {20: {"loss": 1.0, "time": 0.1}})
    assert layout.db["weights_runs"].count_documents({"_id": RUN, "scores": {"$exists": True}}) == 1
    assert layout.db["weights_training_stats"].count_documents({"run_name": RUN}) == 1
    assert counts == {name: layout.db[name].count_documents({}) for name in counts}
    assert counts == {n: MANIFEST["mongo_counts"][n] for n in counts}


def test_dacapo_on_mongodb_with_weights_on_disk_opens_through_the_options(tmp_path, monkeypatch):
    """DaCapo's usual setup: configs and stats in MongoDB, checkpoints under runs_base_dir."""
    import mongomock

    from dacapo_store import Options, create_weights_store

    from .conftest import DB_NAME, dacapo_files_in, load_mongo

    server = mongomock.MongoClient()
    load_mongo(server)
    monkeypatch.setattr("dacapo_store.mongo.MongoClient", lambda *args, **kwargs: server)
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(no_options(tmp_path)))
    root = dacapo_files_in(tmp_path, with_stats_and_configs=False)
    options = Options.instance(
        type="mongo", mongo_db_host="mongodb://db:27017", mongo_db_name=DB_NAME, runs_base_dir=root
    )
    with create_weights_store(options) as store:
        assert store.retrieve_best(RUN, "mito__dice", DATASET) == 10
        assert len(store.retrieve_training_stats(RUN)) == 20
        assert store.latest_iteration(RUN) == 20
