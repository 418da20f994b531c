"""The registry DaCapo's main branch wrote (tests/data/dacapo-main), on both backends.

Every document opens as the class the manifest names, with no raw dict left anywhere, and is
recognised as DaCapo main's (or as one both dialects write alike); what we write into a DaCapo
main registry is main's own document, byte for byte (BSON) and `==` after `yaml.full_load`
(files); main's odd documents (a run without a name, a torch module dumped into YAML) are
listed and reported, never a crash, and nothing in them runs. What DaCapo main drops when it
reads the 0.3.5 pack, we keep.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import bson
import mongomock
import pytest
import yaml
from bson import json_util
from test_dacapo_pack import PACK as PACK_035
from test_dacapo_pack import load_mongo_pack as load_035_mongo_pack

from dacapo_store import ConfigValidationError, RunConfig, converter
from dacapo_store.config_store import FileConfigStore, MongoConfigStore
from dacapo_store.config_store.dialects import document_dialect
from dacapo_store.config_store.documents import KIND_CLASSES

PACK = Path(__file__).parent / "data" / "dacapo-main"
MANIFEST = json.loads((PACK / "manifest.json").read_text())
DB = MANIFEST["mongo_database"]
CONFIG_KINDS = ["runs", "tasks", "architectures", "trainers", "datasplits", "datasets", "arrays"]
#: The file in which DaCapo main dumped a torch module (WrappedArchitectureConfig._module).
MODULE_DUMP = "wrapped_main_module"


def mongo_documents(kind: str) -> list[dict[str, Any]]:
    """DaCapo main's documents of a collection, in insertion order, with BSON's exact types."""
    return json_util.loads((PACK / "mongo" / f"{kind}.json").read_text())


def load_mongo_pack(client) -> None:
    for kind in CONFIG_KINDS:
        docs = mongo_documents(kind)
        if docs:
            client[DB][kind].insert_many([dict(d) for d in docs])


def entries(backend: str) -> list[dict[str, Any]]:
    """The manifest's configs that DaCapo main's store of this backend holds."""
    key = "files" if backend == "files" else "mongo"
    return [c for c in MANIFEST["configs"] if c[key]["stored"]]


def stored_name(entry: dict[str, Any]) -> str:
    """The name a document is listed under: a nameless run is `None`, as main's files store names it."""
    return "None" if entry["name"] is None else entry["name"]


def pack_store(backend: str, tmp_path: Path, **kwargs):
    if backend == "files":
        shutil.copytree(PACK / "files" / "configs", tmp_path / "configs")
        store = FileConfigStore(tmp_path / "configs", **kwargs)
    else:
        client = mongomock.MongoClient()
        load_mongo_pack(client)
        store = MongoConfigStore(client=client, db_name=DB, **kwargs)
    store.backend = backend
    return store


@pytest.fixture(params=["files", "mongomock"])
def main_pack(request, tmp_path):
    """The registry DaCapo main wrote, opened by dacapo_store."""
    return pack_store(request.param, tmp_path)


def empty_store(backend: str, tmp_path: Path, **kwargs):
    if backend == "files":
        return FileConfigStore(tmp_path / "ours" / "configs", **kwargs)
    return MongoConfigStore(client=mongomock.MongoClient(), db_name="ours", **kwargs)


def stored_document(store, kind: str, name: str, repetition: Any = "any") -> Any:
    """What a backend holds, as DaCapo reads it: full_load of the file, or the raw BSON."""
    if isinstance(store, FileConfigStore):
        return yaml.full_load((store.path / kind / f"{name}.yaml").read_text())
    query: dict[str, Any] = {"name": None if name == "None" else name}
    if repetition != "any":
        query["repetition"] = repetition
    return store.db[kind].find_one(query, projection={"_id": False})


def theirs(backend: str, entry: dict[str, Any]) -> Any:
    """DaCapo main's own document of a manifest entry on a backend."""
    kind, name = entry["kind"], entry["name"]
    if backend == "files":
        return yaml.full_load((PACK / "files" / entry["files"]["path"]).read_text())
    found = [d for d in mongo_documents(kind) if d.get("name") == name]
    if kind == "runs":
        found = [d for d in found if d.get("repetition") == entry["repetition"]]
    return found[0]


def readable(backend: str) -> list[dict[str, Any]]:
    return [e for e in entries(backend) if not (backend == "files" and e["name"] == MODULE_DUMP)]


def resolve(config: Any, path: str) -> Any:
    """Follow a manifest path (`$.a.b[0].c`, dict keys as `.key`) through a config object."""
    value = config
    for attr, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path[1:]):
        if index:
            value = value[int(index)]
        elif isinstance(value, dict):
            value = value[attr]
        else:
            value = getattr(value, _attribute(value, attr))
    return value


def _attribute(obj: Any, key: str) -> str:
    """The attribute a document key names (main's `_input_shape` is our `input_shape`)."""
    import attrs

    from dacapo_store.configs._base import document_key

    for f in attrs.fields(type(obj)):
        if document_key(f, "main") == key:
            return f.name
    return key


def raw_dicts(value: Any, path: str = "$") -> list[str]:
    """Where a config object still holds a document (a dict with `__type__`): DaCapo's silent dict."""
    import attrs

    if isinstance(value, dict):
        here = [path] if "__type__" in value else []
        return here + [p for k, v in value.items() for p in raw_dicts(v, f"{path}.{k}")]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in raw_dicts(v, f"{path}[{i}]")]
    if attrs.has(type(value)):
        return [
            p
            for f in attrs.fields(type(value))
            for p in raw_dicts(getattr(value, f.name), f"{path}.{f.name}")
        ]
    return []


# --- reading -----------------------------------------------------------------------------------


def test_the_pack_holds_dacapo_mains_new_classes_and_fields():
    classes = {c["class"] for c in MANIFEST["configs"]}
    assert {"WrappedArchitectureConfig", "ModelZooConfig"} <= classes
    nested = {n["__type__"] for c in MANIFEST["configs"] for n in c["nested"]}
    assert "NoiseAugmentConfig" in nested


def test_every_config_retrieves_as_its_class_with_no_raw_dict(main_pack):
    seen = 0
    for entry in readable(main_pack.backend):
        kind = entry["kind"]
        shared = (
            kind == "runs" and main_pack.backend != "files" and entry["name"] in MANIFEST["same_name_runs"]
        )
        repetition = entry["repetition"] if shared else None
        config = main_pack.retrieve(kind, stored_name(entry), repetition=repetition)
        assert type(config).__name__ == entry["class"], (kind, entry["name"])
        assert raw_dicts(config) == [], (kind, entry["name"])
        for part in entry["nested"]:
            value = resolve(config, part["path"])
            assert type(value).__name__ == part["__type__"], (entry["name"], part["path"])
        seen += 1
    assert seen == (67 if main_pack.backend == "files" else 87)


def test_every_document_is_dacapo_mains_and_unstructures_to_its_exact_bytes(main_pack):
    dialects = {"main": 0, "either": 0}
    for entry in readable(main_pack.backend):
        kind, name = entry["kind"], stored_name(entry)
        doc = theirs(main_pack.backend, entry)
        dialect = document_dialect(KIND_CLASSES[kind], doc)
        dialects[dialect] += 1
        ours = converter.unstructure(converter.structure(doc, KIND_CLASSES[kind]), dialect="main")
        if main_pack.backend == "files":
            assert ours == doc, (kind, name)  # tuples and all, as DaCapo's == sees them
        else:
            assert bson.encode(ours) == bson.encode(doc), (kind, name)  # order, int vs double
    assert dialects["main"] >= 45 and dialects["either"] >= 15
    assert main_pack.dialect() == "main"


def test_a_run_is_main_by_its_run_level_fields_and_keeps_them(main_pack):
    name = "main_scratch_cos7_semantic_mito&er&nuc_8nm_dist_mito&er&nuc_wrapped_main_jit_gp_noise_main__0"
    run = main_pack.retrieve_run_config(name)
    assert (run.batch_size, run.num_workers, run.learning_rate) == (1, 0, 0.001)
    assert type(run.architecture_config).__name__ == "WrappedArchitectureConfig"
    assert str(run.architecture_config._module).endswith("main_unet_traced.pt")
    noise = run.trainer_config.augments[0]
    assert type(noise).__name__ == "NoiseAugmentConfig"
    assert noise.kwargs == {"mode": "gaussian", "var": 0.0463}
    assert run.trainer_config.batch_size is None and run.trainer_config.sample_strategy == "reject"


def test_main_only_zarr_metadata_and_private_names_are_read(main_pack):
    assert main_pack.retrieve_array_config("main_raw_ome").ome_metadata is True
    upsampled = main_pack.retrieve_array_config("main_raw_upsampled")
    assert (upsampled.upsample, upsampled.downsample) == ((2, 2, 2), (1, 1, 1))
    assert main_pack.retrieve_architecture_config("unet_main_132").input_shape == (132, 132, 132)
    assert main_pack.retrieve_architecture_config("dummy_arch_main").num_out_channels == 3
    assert main_pack.retrieve_trainer_config("dummy_trainer_main").mirror_augment is True
    zoo = main_pack.retrieve_architecture_config("zoo_main_local_zip")
    assert (zoo.model_id, zoo.trainable_layers) == (
        "/groups/cellmap/dacapo-main/models/affable-shark.zip",
        "decoder.*",
    )


def test_runs_main_stores_with_parts_left_out_read_with_none(main_pack):
    run = main_pack.retrieve_run_config("main_architecture_only")
    assert run.task_config is None and run.num_iterations is None and run.repetition is None
    assert run.verify() == (True, "ok")


# --- writing: DaCapo main's documents, byte for byte ----------------------------------------


@pytest.mark.parametrize("backend", ["files", "mongomock"])
def test_what_we_write_into_a_main_registry_is_dacapo_mains_document(backend, tmp_path):
    ours = empty_store(backend, tmp_path, dialect="main")
    written = 0
    for entry in readable(backend):
        if entry["name"] is None or (entry["name"] in MANIFEST["same_name_runs"] and entry["repetition"]):
            continue  # no name to store it under; the second of two same-name runs
        kind, name = entry["kind"], entry["name"]
        doc = theirs(backend, entry)
        assert (
            ours.put_document(
                kind, converter.unstructure(converter.structure(doc, KIND_CLASSES[kind]), dialect="main")
            )
            is True
        )
        got = stored_document(ours, kind, name)
        if backend == "files":
            assert got == doc, (kind, name)
        else:
            assert bson.encode(got) == bson.encode(doc), (kind, name)
        written += 1
    assert written == (66 if backend == "files" else 85)


@pytest.mark.parametrize("backend", ["files", "mongomock"])
def test_a_run_stored_through_the_typed_api_is_dacapo_mains_document(backend, tmp_path):
    name = "main_scratch_main_dummy_train_validate_dummy_task_main_dummy_arch_main_dummy_trainer_main__0"
    entry = next(e for e in MANIFEST["configs"] if e["name"] == name)
    run = converter.structure(theirs(backend, entry), RunConfig)
    store = empty_store(backend, tmp_path, dialect="main")
    assert store.store_run_config(run) is True
    doc = theirs(backend, entry)
    got = stored_document(store, "runs", name)
    assert (got == doc) if backend == "files" else (bson.encode(got) == bson.encode(doc))
    assert store.store_run_config(run) is False


# --- odd documents main writes -------------------------------------------------------------------


def test_a_run_stored_without_a_name_is_listed_as_none_and_read(main_pack):
    assert "None" in main_pack.retrieve_run_config_names()
    run = main_pack.retrieve_run_config("None")
    assert run.name is None and run.task_config is None
    assert type(run.architecture_config).__name__ == "DummyArchitectureConfig"
    assert dict(main_pack.documents("runs"))["None"]["name"] is None


def test_listing_a_mongodb_registry_with_a_nameless_run_does_not_crash():
    """DaCapo main's MongoConfigStore stores `RunConfig(name=None)`; listing raised TypeError."""
    client = mongomock.MongoClient()
    client["reg"]["runs"].insert_many(
        [dict(d) for d in mongo_documents("runs") if d["name"] in (None, "main_architecture_only")]
    )
    store = MongoConfigStore(client=client, db_name="reg")
    assert store.names("runs") == ["None", "main_architecture_only"]
    assert store.retrieve_run_config_names(architecture_names=["dummy_arch_main"]) == ["None"]
    assert store.get_documents("runs", ["None"])[0]["name"] is None


def test_a_file_holding_a_dumped_torch_module_is_refused_naming_it(tmp_path):
    store = pack_store("files", tmp_path)
    assert MODULE_DUMP in store.retrieve_architecture_config_names()
    with pytest.raises(ConfigValidationError, match=rf"{MODULE_DUMP}\.yaml.*!!python/object:torch") as info:
        store.retrieve_architecture_config(MODULE_DUMP)
    assert "nothing in it was run" in str(info.value)
    found = dict(store.documents("architectures"))[MODULE_DUMP]
    assert isinstance(found, ConfigValidationError)


def test_nothing_in_a_python_tagged_file_runs(tmp_path):
    store = FileConfigStore(tmp_path / "configs")
    (tmp_path / "configs" / "architectures").mkdir(parents=True)
    marker = tmp_path / "ran"
    payload = (
        f"__type__: WrappedArchitectureConfig\n_module: !!python/object/apply:os.system ['touch {marker}']\n"
    )
    (tmp_path / "configs" / "architectures" / "evil.yaml").write_text(payload)
    with pytest.raises(ConfigValidationError, match=r"evil\.yaml.*!!python/object/apply:os\.system"):
        store.retrieve_architecture_config("evil")
    assert not marker.exists()


# --- across versions: what DaCapo main drops from 0.3.5 documents, we keep ------------------------


@pytest.mark.parametrize("backend", ["files", "mongomock"])
def test_what_dacapo_main_drops_or_leaves_a_dict_in_the_035_pack_we_read_whole(backend, tmp_path):
    if backend == "files":
        shutil.copytree(PACK_035 / "configs", tmp_path / "configs")
        store = FileConfigStore(tmp_path / "configs")
    else:
        client = mongomock.MongoClient()
        load_035_mongo_pack(client)
        store = MongoConfigStore(client=client, db_name="dacapo_public")
    (label,) = MANIFEST["main_reads_dacapo_0_3_5_packs"]
    checked = 0
    for entry in MANIFEST["main_reads_dacapo_0_3_5_packs"][label]["entries"]:
        result = entry.get("files" if backend == "files" else "mongo")
        if not result or (result["outcome"] == "object" and not result.get("dropped_keys")):
            continue
        kind = entry["kind"]
        repetition = entry["repetition"] if kind == "runs" and backend != "files" else None
        config = store.retrieve(kind, entry["name"], repetition=repetition)
        assert raw_dicts(config) == [], (kind, entry["name"])
        doc = converter.unstructure(config)
        assert document_dialect(KIND_CLASSES[kind], doc) in ("0.3.5", "either")
        for path in result.get("dropped_keys", []):
            assert resolve_document(doc, path) is not _ABSENT, (entry["name"], path)
        checked += 1
    assert checked >= 20


_ABSENT = object()


def resolve_document(doc: Any, path: str) -> Any:
    value = doc
    for key, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path[1:]):
        try:
            value = value[int(index)] if index else value[key]
        except (KeyError, IndexError, TypeError):
            return _ABSENT
    return value


# --- which dialect a registry writes ------------------------------------------------------------


@pytest.mark.parametrize("backend", ["files", "mongomock"])
def test_the_035_pack_writes_035_and_the_main_pack_main(backend, tmp_path):
    if backend == "files":
        shutil.copytree(PACK_035 / "configs", tmp_path / "035" / "configs")
        old = FileConfigStore(tmp_path / "035" / "configs")
    else:
        client = mongomock.MongoClient()
        load_035_mongo_pack(client)
        old = MongoConfigStore(client=client, db_name="dacapo_public")
    assert old.dialect() == "0.3.5"
    assert pack_store(backend, tmp_path).dialect() == "main"
    assert pack_store(backend, tmp_path / "pinned", dialect="0.3.5").dialect() == "0.3.5"


@pytest.mark.parametrize("backend", ["files", "mongomock"])
def test_a_copy_of_the_main_pack_into_a_new_registry_stays_main(backend, tmp_path):
    from dacapo_store.config_store.transfer import copy_documents

    source = pack_store(backend, tmp_path)
    target = empty_store(backend, tmp_path)
    report = copy_documents(source, target, ["runs", "architectures", "trainers", "tasks"])
    failed = {name for _, name, _ in report.failed} | {name for _, name, _ in report.conflicts}
    assert failed <= {MODULE_DUMP, "main_inner_mito", "None"}  # unreadable; a 2nd repetition; no name
    assert target.dialect() == "main"
    entry = next(e for e in MANIFEST["configs"] if e["name"] == "gp_aug_main")
    got = stored_document(target, "trainers", "gp_aug_main")
    doc = theirs(backend, entry)
    assert (got == doc) if backend == "files" else (bson.encode(got) == bson.encode(doc))
