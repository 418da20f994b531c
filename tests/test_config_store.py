"""The ConfigStore specification, run on every backend (files, mongomock, real MongoDB)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import attrs
import pytest
import yaml
from conftest import as_lists, full_run, small_run

from dacapo_store import (
    ConfigInUseError,
    ConfigNotFoundError,
    ConfigValidationError,
    DuplicateNameError,
    InvalidNameError,
    UnknownConfigTypeError,
    converter,
)
from dacapo_store.config_store import KINDS, FileConfigStore
from dacapo_store.configs import DummyArrayConfig, DummyTrainerConfig, StartConfig

RUN = full_run()


def parts_of(run):
    split = run.datasplit_config
    return {
        "tasks": run.task_config,
        "architectures": run.architecture_config,
        "trainers": run.trainer_config,
        "datasplits": split,
        "datasets": split.train_configs[0],
        "arrays": split.train_configs[0].raw_config,
    }


def everything_stored(store):
    return {kind: store.names(kind) for kind in KINDS}


EMPTY = {kind: [] for kind in KINDS}


@pytest.mark.parametrize("kind", ["tasks", "architectures", "trainers", "datasplits", "datasets", "arrays"])
def test_each_kind_round_trips(config_store, kind):
    config = parts_of(RUN)[kind]
    singular = kind[:-1]
    getattr(config_store, f"store_{singular}_config")(config)
    assert getattr(config_store, f"retrieve_{singular}_config")(config.name) == config
    assert getattr(config_store, f"retrieve_{singular}_config_names")() == [config.name]


def test_run_round_trips_and_stores_its_parts(config_store):
    config_store.store_run_config(RUN)
    assert config_store.retrieve_run_config("run") == RUN
    for kind, part in parts_of(RUN).items():
        if kind in ("datasets", "arrays"):
            assert config_store.names(kind) == []
        else:
            assert config_store.retrieve(kind, part.name) == part


def test_storing_an_equal_config_again_is_a_no_op(config_store):
    config_store.store_run_config(RUN)
    before = config_store.metadata("runs", "run")
    config_store.store_run_config(full_run())
    assert config_store.metadata("runs", "run") == before
    assert config_store.retrieve_run_config_names() == ["run"]


def test_a_different_config_under_a_stored_name_raises_with_the_differences(config_store):
    config_store.store_trainer_config(RUN.trainer_config)
    changed = attrs.evolve(RUN.trainer_config, batch_size=7)
    with pytest.raises(
        DuplicateNameError, match=r"trainer config named 'gunpowder'.*batch_size: stored 2, given 7"
    ):
        config_store.store_trainer_config(changed)
    assert config_store.retrieve_trainer_config("gunpowder") == RUN.trainer_config


def test_duplicate_error_lists_each_differing_field(config_store):
    config_store.store_run_config(RUN)
    other = full_run(num_iterations=5, validation_interval=7)
    with pytest.raises(DuplicateNameError) as info:
        config_store.store_run_config(other)
    assert {(p, a, b) for p, a, b in info.value.differences} == {
        ("num_iterations", 100_000, 5),
        ("validation_interval", 5000, 7),
    }


def test_a_run_with_a_conflicting_part_writes_nothing(config_store):
    config_store.store_trainer_config(attrs.evolve(RUN.trainer_config, learning_rate=0.5))
    before = everything_stored(config_store)
    with pytest.raises(DuplicateNameError, match="trainer config named 'gunpowder'"):
        config_store.store_run_config(RUN)
    assert everything_stored(config_store) == before


def test_a_config_failing_verify_is_not_stored(config_store):
    bad = full_run(num_iterations=0)
    with pytest.raises(ConfigValidationError, match="num_iterations must be > 0"):
        config_store.store_run_config(bad)
    assert everything_stored(config_store) == EMPTY


def test_verify_false_stores_a_config_that_fails_verify(config_store):
    bad = DummyTrainerConfig("zero", batch_size=0, learning_rate=0.1, mirror_augment=False)
    config_store.store_trainer_config(bad, verify=False)
    assert config_store.retrieve_trainer_config("zero") == bad


def test_retrieving_a_missing_config_raises_a_key_error_naming_kind_and_name(config_store):
    with pytest.raises(ConfigNotFoundError, match="no task config named 'nothing'") as info:
        config_store.retrieve_task_config("nothing")
    assert isinstance(info.value, KeyError)


def test_names_are_sorted(config_store):
    for name in ["b", "a", "c"]:
        config_store.store_array_config(DummyArrayConfig(name))
    assert config_store.retrieve_array_config_names() == ["a", "b", "c"]


def test_run_names_filter_by_each_part(config_store):
    config_store.store_run_config(full_run("one"))
    config_store.store_run_config(small_run("two"))
    assert config_store.retrieve_run_config_names() == ["one", "two"]
    assert config_store.retrieve_run_config_names(task_names=["dummy_task"]) == ["two"]
    assert config_store.retrieve_run_config_names(architecture_names=["unet", "dummy_arch"]) == ["one", "two"]
    assert config_store.retrieve_run_config_names(architecture_names=["unet"]) == ["one"]
    assert config_store.retrieve_run_config_names(trainer_names=["gunpowder"]) == ["one", "two"]
    assert config_store.retrieve_run_config_names(datasplit_names=["other"]) == []
    assert config_store.retrieve_run_config_names(task_names=["distances"], trainer_names=["gunpowder"]) == [
        "one"
    ]


def test_run_filter_sees_a_deleted_run_go(config_store):
    config_store.store_run_config(small_run("two"))
    config_store.delete_run_config("two")
    assert config_store.retrieve_run_config_names(task_names=["dummy_task"]) == []


def test_delete_removes_the_config(config_store):
    config_store.store_array_config(DummyArrayConfig("gone"))
    config_store.delete_array_config("gone")
    assert config_store.retrieve_array_config_names() == []
    with pytest.raises(ConfigNotFoundError):
        config_store.retrieve_array_config("gone")


def test_deleting_a_missing_config_raises(config_store):
    with pytest.raises(ConfigNotFoundError, match="no array config named 'never'"):
        config_store.delete_array_config("never")


def test_deleting_a_run_that_another_run_starts_from_is_refused(config_store):
    config_store.store_run_config(small_run("pretrained"))
    config_store.store_run_config(full_run("finetune"))
    with pytest.raises(ConfigInUseError, match="'pretrained' is the start of run\\(s\\) finetune"):
        config_store.delete_run_config("pretrained")
    assert config_store.retrieve_run_config_names() == ["finetune", "pretrained"]


def test_force_deletes_a_run_in_use(config_store):
    config_store.store_run_config(small_run("pretrained"))
    config_store.store_run_config(full_run("finetune"))
    config_store.delete_run_config("pretrained", force=True)
    assert config_store.retrieve_run_config_names() == ["finetune"]


def test_starts_from_lists_runs_and_criteria(config_store):
    config_store.store_run_config(full_run("a"))
    config_store.store_run_config(full_run("b", start_config=StartConfig("pretrained", "latest")))
    config_store.store_run_config(small_run("c"))
    assert config_store.starts_from("pretrained") == [("a", "voi"), ("b", "latest")]
    assert config_store.starts_from("c") == []


def test_metadata_says_who_and_when_and_stays_out_of_the_config(config_store):
    config_store.store_run_config(RUN)
    meta = config_store.metadata("runs", "run")
    assert meta.created_at.tzinfo is not None
    assert abs(meta.created_at - datetime.now(timezone.utc)) < timedelta(minutes=5)
    assert "@" in meta.created_by
    assert meta.content_hash.startswith("sha256:")
    doc = config_store.get_document("runs", "run")
    assert as_lists(doc) == as_lists(converter.unstructure(RUN))
    assert "__dacapo_store__" not in doc


def test_equal_configs_have_equal_content_hashes(config_store):
    config_store.store_run_config(full_run("a"))
    config_store.store_run_config(full_run("b", start_config=StartConfig("x", "voi")))
    a, b = config_store.metadata("tasks", "distances"), config_store.metadata("runs", "a")
    assert a.content_hash != b.content_hash
    assert config_store.metadata("runs", "a").content_hash != config_store.metadata("runs", "b").content_hash


BAD_NAMES = [
    "..",
    ".",
    "../escape",
    ".hidden",
    "nul\x00byte",
    "",
    "x" * 251,
    "é" * 126,  # 252 bytes in UTF-8
    "new\nline",
    "tab\there",
    "back\\slash",
    "bell\x07",
]
#: What DaCapo's DataSplitGenerator and its users make; every backend stores them.
GOOD_NAMES = [
    "jrc_hela-2_semantic_mito&er_8nm",
    "jrc_hela-2_[mito&er]_mito_er_nuc_8nm_gt",
    "sp ace",
    "ü",
    "a+b=c:d",
    "x" * 250,
    "é" * 125,
    "日本語の名前",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_bad_config_name_is_refused_before_anything_is_written(config_store, name):
    with pytest.raises(InvalidNameError, match="invalid array name"):
        config_store.store_array_config(DummyArrayConfig(name))
    assert everything_stored(config_store) == EMPTY


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_bad_name_is_refused_on_retrieve_and_delete(config_store, name):
    with pytest.raises(InvalidNameError):
        config_store.retrieve_run_config(name)
    with pytest.raises(InvalidNameError):
        config_store.delete_run_config(name)


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_names_dacapo_makes_are_stored_listed_retrieved_and_deleted(config_store, name):
    config_store.store_array_config(DummyArrayConfig(name))
    assert config_store.retrieve_array_config_names() == [name]
    assert config_store.retrieve_array_config(name) == DummyArrayConfig(name)
    assert config_store.metadata("arrays", name).created_by
    config_store.delete_array_config(name)
    assert everything_stored(config_store) == EMPTY


def test_a_slash_in_a_name_is_refused_by_the_files_backend_saying_why(config_store):
    name = "jrc_hela-2_recon-1/labels/groundtruth/crop1/[mito&er]_mito_8nm_binarized"
    if not config_store.slash_in_names:
        with pytest.raises(InvalidNameError, match=r"holds '/'.*files backend"):
            config_store.store_array_config(DummyArrayConfig(name))
        assert everything_stored(config_store) == EMPTY
        with pytest.raises(InvalidNameError, match="holds '/'"):
            config_store.retrieve_array_config(name)
    else:
        config_store.store_array_config(DummyArrayConfig(name))
        assert config_store.retrieve_array_config(name) == DummyArrayConfig(name)


@pytest.mark.parametrize("name", [{"$ne": None}, 3, None, ["a"], b"bytes"])
def test_a_non_str_name_is_refused_before_a_query(config_store, name):
    config_store.store_run_config(RUN)
    with pytest.raises(TypeError, match="must be a str"):
        config_store.retrieve_run_config(name)
    with pytest.raises(TypeError, match="must be a str"):
        config_store.delete_run_config(name)
    with pytest.raises(TypeError, match="must be a str"):
        config_store.retrieve_run_config_names(task_names=[name])
    assert config_store.retrieve_run_config_names() == ["run"]


@pytest.mark.parametrize(
    "name",
    ["a" * 128, "hela_semantic_mito&er&nuc_8nm_[mito&er]_" + "x" * 120, "sp ace", "ü"],
)
def test_dacapos_generated_names_are_fine(config_store, name):
    config_store.store_array_config(DummyArrayConfig(name))
    assert config_store.retrieve_array_config_names() == [name]


def test_an_unknown_kind_is_refused(config_store):
    with pytest.raises(ValueError, match="unknown kind 'models'"):
        config_store.names("models")


def test_store_takes_only_configs_of_the_method_kind(config_store):
    with pytest.raises(TypeError, match="store_task_config takes a TaskConfig"):
        config_store.store_task_config(DummyArrayConfig("a"))
    assert everything_stored(config_store) == EMPTY


def test_a_document_of_an_unregistered_type_is_kept_as_a_document(config_store):
    doc = {"__type__": "FancyPluginTaskConfig", "name": "fancy", "depth": 3}
    assert config_store.put_document("tasks", doc) is True
    assert config_store.get_document("tasks", "fancy") == doc
    with pytest.raises(UnknownConfigTypeError, match="FancyPluginTaskConfig"):
        config_store.retrieve_task_config("fancy")


def test_documents_iterates_every_config_of_a_kind(config_store):
    config_store.store_run_config(full_run("a"))
    config_store.store_run_config(small_run("b"))
    docs = dict(config_store.documents("runs"))
    assert as_lists(docs) == as_lists(
        {"a": converter.unstructure(full_run("a")), "b": converter.unstructure(small_run("b"))}
    )


def test_put_document_keeps_given_metadata(config_store):
    meta = {"created_at": "2020-01-02T03:04:05.000+00:00", "created_by": "ada@lab", "content_hash": "x"}
    config_store.put_document("arrays", {"__type__": "DummyArrayConfig", "name": "a"}, metadata=meta)
    got = config_store.metadata("arrays", "a")
    assert (got.created_by, got.created_at.year) == ("ada@lab", 2020)


def test_store_says_whether_it_wrote(config_store):
    assert config_store.store_run_config(full_run()) is True
    assert config_store.store_run_config(full_run()) is False


def test_metadata_of_another_content_is_not_shown(config_store):
    # DaCapo (or a hand) replaced the document behind our back: our record is not its.
    config_store.store_array_config(DummyArrayConfig("a"))
    replaced = {"__type__": "DummyArrayConfig", "name": "a", "note": "rewritten"}
    if isinstance(config_store, FileConfigStore):
        (config_store.path / "arrays" / "a.yaml").write_text(yaml.dump(replaced))
    else:
        config_store.db["arrays"].replace_one({"name": "a"}, replaced)
    meta = config_store.metadata("arrays", "a")
    assert meta.created_by is None and meta.created_at is None
    assert "__dacapo_store__" not in config_store.raw_document("arrays", "a")


def test_get_documents_reads_several_in_order_and_names_the_first_missing(config_store):
    config_store.store_run_config(RUN)
    config_store.store_run_config(attrs.evolve(RUN, name="second"))
    docs = config_store.get_documents("runs", ["second", "run"])
    assert docs == [config_store.get_document("runs", "second"), config_store.get_document("runs", "run")]
    with pytest.raises(ConfigNotFoundError, match="no run config named 'missing'"):
        config_store.get_documents("runs", ["run", "missing"])
    assert config_store.get_documents("tasks", [RUN.task_config.name])[0]["name"] == RUN.task_config.name
