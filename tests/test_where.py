"""Search runs by config values (`dacapo_store.where`): the parser, the rules, and the config stores
(one pass on files, one query on MongoDB) answering the same on what DaCapo 0.3.5 wrote."""

from __future__ import annotations

import mongomock
import pytest
from conftest import no_options, small_run
from legacy.conftest import DB_NAME, PACK, load_mongo
from strict_mongo import StrictMongoClient

from dacapo_store.config_store import FileConfigStore, MongoConfigStore
from dacapo_store.where import WhereError, matches, mongo_filter, parse, parse_all

DOC = {
    "name": "r",
    "num_iterations": 2000,
    "flag": True,
    "architecture_config": {"fmaps_out": 32, "name": "unet"},
    "trainer_config": {"learning_rate": 1e-4},
    "task_config": {"channels": ["mito", "er"]},
    "datasplit_config": {"validate_configs": [{"name": "jrc_hela-2_crop"}, {"name": "dvid"}]},
}


@pytest.mark.parametrize(
    ("expression", "holds"),
    [
        ("architecture_config.fmaps_out == 32", True),
        ("architecture_config.fmaps_out == 32.0", True),
        ("architecture_config.fmaps_out == '32'", False),  # bare text '32' with quotes: not a number
        ('architecture_config.fmaps_out == "32"', False),
        ("num_iterations > 1000", True),
        ("num_iterations<=1000", False),
        ("trainer_config.learning_rate < 0.001", True),
        ("task_config.channels ~ mito", True),
        ("task_config.channels ~ nuc", False),
        ('task_config.channels == ["mito", "er"]', True),
        ("task_config.channels == mito", True),  # a list holds it (MongoDB's rule)
        ("task_config.channels != nuc", True),
        ("datasplit_config.validate_configs.0.name == jrc_hela-2_crop", True),
        ("datasplit_config.validate_configs.1.name == jrc_hela-2_crop", False),
        ("datasplit_config.validate_configs.name ~ hela", True),
        ("architecture_config.name ~ une", True),
        ("flag == true", True),
        ("flag == 1", False),  # a bool is not a number
        ("missing == null", True),
        ("missing != 3", True),
        ("missing > 3", False),
        ("name > q", True),  # text with text
        ("num_iterations > a", False),  # never across types
    ],
)
def test_the_rules(expression, holds):
    assert matches(DOC, [parse(expression)]) is holds


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        ("architecture_config.fmaps_out = 32", "no operator"),
        ("== 32", "no path"),
        ("architecture_config..fmaps_out == 32", "can't read path"),
        ("a.b$c == 1", "'b$c'"),
        ("num_iterations >", "no value after '>'"),
        ("num_iterations === 3", "can't read operator '==='"),
        ("num_iterations < [1, 2]", "compares numbers or text"),
        ("_id == 3", "not part of a run's config"),
        ("x == NaN", "not a finite number"),
    ],
)
def test_a_malformed_expression_names_the_part(expression, names):
    with pytest.raises(WhereError) as error:
        parse(expression)
    assert names in str(error.value) and expression in str(error.value)


def test_a_condition_with_a_list_is_hashable_and_equal_to_itself():
    a, b = parse('task_config.channels == ["mito", "er"]'), parse('task_config.channels == ["mito", "er"]')
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1


def test_several_are_all_asked():
    both = parse_all(["num_iterations > 1000", "architecture_config.fmaps_out == 32"])
    assert matches(DOC, both)
    assert not matches(DOC, [*both, parse("flag == false")])
    assert mongo_filter(both) == {
        "$and": [{"num_iterations": {"$gt": 1000}}, {"architecture_config.fmaps_out": {"$eq": 32}}]
    }


@pytest.mark.parametrize("backend", ["files", "mongomock"])
def test_a_config_store_searches_its_runs(backend, tmp_path):
    store = (
        FileConfigStore(tmp_path / "configs")
        if backend == "files"
        else MongoConfigStore(client=StrictMongoClient(), db_name="t")
    )
    for name, iterations in [("a", 500), ("b", 5000), ("c", 50000)]:
        store.store_run_config(small_run(name, num_iterations=iterations))
    assert store.retrieve_run_config_names(where=["num_iterations > 1000"]) == ["b", "c"]
    assert store.retrieve_run_config_names(where=["num_iterations > 1000", "name != c"]) == ["b"]
    assert store.retrieve_run_config_names(where="task_config.name == dummy_task") == ["a", "b", "c"]
    assert store.retrieve_run_config_names(task_names=["nope"], where=["num_iterations > 1"]) == []
    with pytest.raises(WhereError, match="no operator"):
        store.retrieve_run_config_names(where=["num_iterations 1000"])
    assert store.retrieve_run_config_names() == ["a", "b", "c"]  # unchanged


PACK_SEARCHES = {
    "architecture_config.fmaps_out == 72": [
        "lab_cosem_jrc_hela-2_hot_er",
        "lab_inner_mito",
        "lab_jrc_hela-2_split_pretrained_lab_unet_lab_132_gp_simple_lab__0",
    ],
    "task_config.channels ~ mito": [
        "hela_semantic_mito&er&nuc_8nm_dist_mito&er&nuc_tiny_unet_lab_gp_aug_lab__0",
        "hela_semantic_mito&er&nuc_8nm_dist_mito&er&nuc_tiny_unet_lab_gp_aug_lab__1",
        "lab_dist_mito_ints",
        "lab_inner_mito",
    ],
    "datasplit_config.validate_configs.1.name == lab_dvid_dataset": [
        "lab_inner_mito",
        "lab_jrc_hela-2_split_pretrained_lab_unet_lab_132_gp_simple_lab__0",
        "lab_lsd_er",
    ],
}


def test_files_and_mongodb_agree_on_what_dacapo_wrote():
    files = FileConfigStore(PACK / "files" / "configs")
    client = StrictMongoClient()
    load_mongo(client)
    mongo = MongoConfigStore(client=client, db_name=DB_NAME)
    on_files = set(files.names("runs"))
    expressions = [
        *PACK_SEARCHES,
        "num_iterations >= 100000",
        "trainer_config.learning_rate < 0.0001",
        "datasplit_config.validate_configs.name ~ hela",
        "task_config.channels == er",
        "architecture_config.fmaps_out != 4",
        "start_config == null",
    ]
    for expression in expressions:
        found = files.retrieve_run_config_names(where=[expression])
        assert [n for n in mongo.retrieve_run_config_names(where=[expression]) if n in on_files] == found
        if expression in PACK_SEARCHES:
            assert found == PACK_SEARCHES[expression], expression
    assert isinstance(client, mongomock.MongoClient)


# ---------------------------------------------------------------------------------- the command line


def test_list_runs_where_on_what_dacapo_wrote(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from dacapo_store.cli import app

    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(no_options(tmp_path / "options")))
    store = f"files:{PACK / 'files'}"
    run = CliRunner().invoke(
        app,
        [
            "--store",
            store,
            "list",
            "runs",
            "--where",
            "architecture_config.fmaps_out == 72",
            "--where",
            "num_iterations > 60000",
        ],
    )
    assert run.exit_code == 0, run.output
    assert run.stdout.split() == [
        "lab_cosem_jrc_hela-2_hot_er",
        "lab_jrc_hela-2_split_pretrained_lab_unet_lab_132_gp_simple_lab__0",
    ]
    bad = CliRunner().invoke(app, ["--store", store, "list", "runs", "--where", "num_iterations => 3"])
    assert bad.exit_code == 2 and bad.stdout == ""
    assert bad.stderr.strip().count("\n") == 0 and "num_iterations => 3" in bad.stderr
    assert CliRunner().invoke(app, ["--store", store, "list", "tasks", "--where", "a == 1"]).exit_code == 2


def test_files_and_mongodb_agree_on_what_dacapo_main_wrote(tmp_path):
    """DaCapo main's registry (new classes, null fields, a run without a name): the MongoDB query
    and the files pass find the same runs, and each search finds some runs and leaves some out."""
    from test_dacapo_main_pack import pack_store

    files = pack_store("files", tmp_path / "files")
    mongo = pack_store("mongomock", tmp_path / "mongo")
    on_files = set(files.names("runs"))
    assert len(on_files) > 5
    for expression in [
        "validation_interval == 1000",
        "task_config == null",
        "architecture_config.__type__ == DummyArchitectureConfig",
        "learning_rate < 0.001",  # a run field in main (the trainer's in 0.3.5)
        "architecture_config.name ~ main",
        "num_iterations != null",
    ]:
        found = files.retrieve_run_config_names(where=[expression])
        assert 0 < len(found) < len(on_files), (expression, found)
        assert [n for n in mongo.retrieve_run_config_names(where=[expression]) if n in on_files] == found
