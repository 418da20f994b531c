"""The registry DaCapo 0.3.5 wrote (tests/data/dacapo-0.3.5-configs), on both backends.

Every config opens and matches the manifest; our documents are DaCapo's byte for byte
(BSON) and `==` after `yaml.full_load` (files), so DaCapo re-storing them is a no-op; runs
that share a name across repetitions; reading never writes.
"""

from __future__ import annotations

import hashlib
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

from dacapo_store import (
    AmbiguousNameError,
    ConfigNotFoundError,
    ConfigValidationError,
    DuplicateNameError,
    InvalidNameError,
    RunConfig,
    converter,
)
from dacapo_store.config_store import FileConfigStore, MongoConfigStore
from dacapo_store.config_store.documents import KIND_CLASSES
from dacapo_store.configs._base import FAMILIES

PACK = Path(__file__).parent / "data" / "dacapo-0.3.5-configs"
MANIFEST = json.loads((PACK / "manifest.json").read_text())
CONFIG_KINDS = ["runs", "tasks", "architectures", "trainers", "datasplits", "datasets", "arrays"]


def mongo_documents(kind: str) -> list[dict[str, Any]]:
    """DaCapo's documents of a collection, in insertion order, with BSON's exact types."""
    return json_util.loads((PACK / "mongo" / f"{kind}.json").read_text())


def load_mongo_pack(client, db_name: str = "dacapo_public") -> None:
    for kind in CONFIG_KINDS:
        docs = mongo_documents(kind)
        if docs:
            client[db_name][kind].insert_many([dict(d) for d in docs])


def files_of(kind: str) -> list[Path]:
    return sorted((PACK / "configs" / kind).glob("*.yaml"))


def entries(backend: str) -> list[dict[str, Any]]:
    """The manifest's configs that DaCapo's store of this backend holds."""
    key = "files" if backend == "files" else "mongo"
    return [c for c in MANIFEST["configs"] if c[key]["stored"]]


@pytest.fixture(params=["files", "mongomock"])
def pack_store(request, tmp_path):
    """The DaCapo-written registry, opened by dacapo_store."""
    if request.param == "files":
        shutil.copytree(PACK / "configs", tmp_path / "configs")
        store = FileConfigStore(tmp_path / "configs")
    else:
        client = mongomock.MongoClient()
        load_mongo_pack(client)
        store = MongoConfigStore(client=client, db_name="dacapo_public")
    store.backend = request.param
    return store


def empty_store(backend: str, tmp_path):
    if backend == "files":
        return FileConfigStore(tmp_path / "ours" / "configs")
    return MongoConfigStore(client=mongomock.MongoClient(), db_name="ours")


def resolve(config: Any, path: str) -> Any:
    """Follow a manifest path (`$.a.b[0].c`, dict keys as `.key`) through a config object."""
    value = config
    for attr, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path[1:]):
        if index:
            value = value[int(index)]
        elif isinstance(value, dict):
            value = value[attr]
        else:
            value = getattr(value, attr)
    return value


def stored_document(store, kind: str, name: str, repetition: int | None = None) -> Any:
    """What a backend holds, as DaCapo reads it: full_load of the file, or the raw BSON."""
    if isinstance(store, FileConfigStore):
        return yaml.full_load((store.path / kind / f"{name}.yaml").read_text())
    query = {"name": name} if repetition is None else {"name": name, "repetition": repetition}
    return store.db[kind].find_one(query, projection={"_id": False})


# --- reading -------------------------------------------------------------------------------


def test_the_pack_covers_every_class_and_each_is_registered():
    registered = {name for members in FAMILIES.values() for name in members} | {"RunConfig"}
    covered = set(MANIFEST["classes_covered"])
    assert len(covered) == 40
    assert covered <= registered


def test_every_config_retrieves_and_matches_the_manifest(pack_store):
    seen = 0
    for entry in entries(pack_store.backend):
        kind, name = entry["kind"], entry["name"]
        repetition = entry.get("repetition") if kind == "runs" else None
        config = pack_store.retrieve(kind, name, repetition=repetition)
        assert type(config).__name__ == entry["__type__"], (kind, name)
        assert isinstance(config, KIND_CLASSES[kind])
        if kind == "runs":
            assert config.repetition == entry["repetition"]
            start = entry["start_config"]
            assert (
                converter.unstructure(config.start_config) == start if start else config.start_config is None
            )
        for part in entry.get("nested", []):
            value = resolve(config, part["path"])
            assert type(value).__name__ == part["__type__"], (name, part["path"])
            assert getattr(value, "name", None) == part["name"], (name, part["path"])
        seen += 1
    assert seen == (56 if pack_store.backend == "files" else 73)


def test_every_retrieved_config_unstructures_to_dacapos_exact_document(pack_store):
    for entry in entries(pack_store.backend):
        kind, name = entry["kind"], entry["name"]
        repetition = entry.get("repetition") if kind == "runs" else None
        ours = converter.unstructure(pack_store.retrieve(kind, name, repetition=repetition))
        theirs = stored_document(pack_store, kind, name, repetition)
        if pack_store.backend == "files":
            assert ours == theirs, (kind, name)  # tuples and all, as DaCapo's == sees them
        else:
            assert bson.encode(ours) == bson.encode(theirs), (kind, name)  # order, int vs double


def test_the_tiff_array_dacapo_leaves_as_a_dict_is_read_as_a_config(pack_store):
    tiff = pack_store.retrieve_array_config("lab_tiff_raw")
    assert type(tiff).__name__ == "TiffArrayConfig"
    assert tiff.voxel_size == (8, 8, 8)
    assert str(tiff.file_name) == "/groups/lab/raw_868.tif"


def test_an_int_in_a_float_field_stays_an_int(pack_store):
    task = pack_store.retrieve_task_config("dist_mito_ints")
    assert type(task.scale_factor) is int
    assert type(task.clip_distance) is int


def test_long_names_and_dacapo_characters_are_listed_shown_and_retrieved(pack_store):
    runs = pack_store.retrieve_run_config_names()
    long = [n for n in runs if len(n) > 128]
    assert long and all("&" in n for n in long)
    for name in long:
        assert pack_store.retrieve_run_config(name).name == name
    arrays = pack_store.retrieve_array_config_names()
    bracketed = [n for n in arrays if "[" in n]
    assert bracketed
    assert pack_store.get_document("arrays", bracketed[0])["name"] == bracketed[0]


def test_names_with_a_slash_are_mongodb_only(pack_store):
    name = "raw_jrc_hela-2_recon-1/em/fibsem-uint8_s1_uint8"
    if pack_store.backend == "files":
        with pytest.raises(InvalidNameError, match="holds '/'"):
            pack_store.retrieve_array_config(name)
    else:
        assert pack_store.retrieve_array_config(name).name == name


def test_dacapo_documents_have_no_metadata(pack_store):
    meta = pack_store.metadata("tasks", "hot_er")
    assert meta.created_by is None and meta.created_at is None
    assert meta.content_hash.startswith("sha256:")
    assert "__dacapo_store__" not in dict(pack_store.documents("tasks", with_metadata=True))["hot_er"]


# --- writing: what DaCapo finds when it re-stores ---------------------------------------------


@pytest.mark.parametrize("backend", ["files", "mongomock"])
def test_our_documents_are_dacapos_documents(backend, tmp_path):
    """Store every config of the pack with dacapo_store; each written document is DaCapo's."""
    theirs = FileConfigStore(PACK / "configs")
    ours = empty_store(backend, tmp_path)
    written = 0
    for entry in entries(backend):
        kind, name = entry["kind"], entry["name"]
        if kind == "runs" and entry["repetition"] != min(
            e["repetition"] for e in entries(backend) if e["kind"] == "runs" and e["name"] == name
        ):
            continue  # the second repetition of a name: see the repetition tests
        if backend == "files":
            config = converter.structure(theirs.get_document(kind, name), KIND_CLASSES[kind])
            expected = yaml.full_load((PACK / "configs" / kind / f"{name}.yaml").read_text())
        else:
            (doc,) = [d for d in mongo_documents(kind) if d["name"] == name][:1]
            config = converter.structure(doc, KIND_CLASSES[kind])
            expected = doc
        assert ours.put_document(kind, converter.unstructure(config)) is True
        got = stored_document(ours, kind, name)
        if backend == "files":
            assert got == expected, (kind, name)
        else:
            assert bson.encode(got) == bson.encode(expected), (kind, name)
        written += 1
    assert written == (56 if backend == "files" else 72)


def test_a_run_stored_through_the_typed_api_is_dacapos_document(tmp_path):
    name = "lab_dummy_train_validate_dummy_task_lab_dummy_arch_lab_dummy_trainer_lab__0"
    text = (PACK / "configs" / "runs" / f"{name}.yaml").read_text()
    run = converter.structure(yaml.full_load(text), RunConfig)
    for backend in ("files", "mongomock"):
        store = empty_store(backend, tmp_path / backend)
        assert store.store_run_config(run) is True
        got = stored_document(store, "runs", name)
        if backend == "files":
            assert got == yaml.full_load(text)
        else:
            (doc,) = [d for d in mongo_documents("runs") if d["name"] == name]
            assert bson.encode(got) == bson.encode(doc)
        assert store.store_run_config(run) is False


def test_copying_mongo_documents_to_files_writes_dacapos_tuples(tmp_path):
    from dacapo_store.config_store.transfer import copy_documents

    client = mongomock.MongoClient()
    load_mongo_pack(client)
    source = MongoConfigStore(client=client, db_name="dacapo_public")
    target = FileConfigStore(tmp_path / "configs")
    report = copy_documents(source, target, ["architectures", "tasks", "trainers"])
    assert report.ok
    for kind in ("architectures", "tasks", "trainers"):
        for file in files_of(kind):
            assert yaml.full_load((tmp_path / "configs" / kind / file.name).read_text()) == yaml.full_load(
                file.read_text()
            )


# --- runs sharing a name across repetitions (MongoDB, written by DaCapo) -------------------------


@pytest.fixture
def mongo_pack():
    client = mongomock.MongoClient()
    load_mongo_pack(client)
    return MongoConfigStore(client=client, db_name="dacapo_public")


def test_a_shared_run_name_is_listed_once(mongo_pack):
    names = mongo_pack.retrieve_run_config_names()
    assert names.count("lab_inner_mito") == 1
    assert len(names) == len(set(names)) == 10
    assert mongo_pack.shared_run_names() == {"lab_inner_mito": [0, 1]}


def test_retrieving_a_shared_run_name_names_the_repetitions(mongo_pack):
    with pytest.raises(AmbiguousNameError, match=r"'lab_inner_mito'.*repetitions 0, 1.*repetition=") as info:
        mongo_pack.retrieve_run_config("lab_inner_mito")
    assert info.value.repetitions == [0, 1]
    assert mongo_pack.retrieve_run_config("lab_inner_mito", repetition=1).repetition == 1
    assert mongo_pack.retrieve_run_config("lab_inner_mito", 0).repetition == 0
    with pytest.raises(ConfigNotFoundError, match="repetition 7"):
        mongo_pack.retrieve_run_config("lab_inner_mito", repetition=7)


def test_storing_another_run_under_a_shared_name_is_a_duplicate(mongo_pack):
    run = mongo_pack.retrieve_run_config("lab_inner_mito", repetition=0)
    before = list(mongo_pack.db["runs"].find({}, {"_id": False}))
    import attrs

    with pytest.raises(DuplicateNameError, match="lab_inner_mito"):
        mongo_pack.store_run_config(attrs.evolve(run, repetition=5), verify=False)
    assert list(mongo_pack.db["runs"].find({}, {"_id": False})) == before


def test_deleting_a_shared_run_name_is_refused(mongo_pack):
    with pytest.raises(AmbiguousNameError):
        mongo_pack.delete_run_config("lab_inner_mito")
    assert mongo_pack.db["runs"].count_documents({"name": "lab_inner_mito"}) == 2


# --- reading never writes -------------------------------------------------------------------


def tree_digest(folder: Path) -> dict[str, str]:
    """Every path under `folder` (folders too) with its content's hash and mode."""
    out = {}
    for path in sorted(folder.rglob("*")):
        st = path.lstat()
        data = path.read_bytes() if path.is_file() else b""
        out[str(path.relative_to(folder))] = f"{st.st_mode:o}:{hashlib.sha256(data).hexdigest()}"
    return out


def mongo_digest(store) -> dict[str, list]:
    return {c: list(store.db[c].find({}, {"_id": False})) for c in sorted(store.db.list_collection_names())}


def read_everything(store) -> None:
    """Every read method of ConfigStore, on every document."""
    store.describe()
    for kind in CONFIG_KINDS:
        names = store.names(kind)
        getattr(store, f"retrieve_{kind[:-1]}_config_names")()
        list(store.documents(kind))
        list(store.documents(kind, with_metadata=True))
        for name in names:
            try:
                store.retrieve(kind, name)
                store.get_document(kind, name)
                store.raw_document(kind, name)
                store.metadata(kind, name)
            except AmbiguousNameError:
                for rep in store.shared_run_names()[name]:
                    store.retrieve(kind, name, repetition=rep)
                    store.metadata(kind, name, repetition=rep)
    store.retrieve_run_config_names(task_names=["hot_er"], architecture_names=["tiny_unet_lab"])
    store.retrieve_run_config_names(datasplit_names=["lab_simple_split"], trainer_names=["gp_aug_lab"])
    store.starts_from("hela_semantic_mito&er&nuc_8nm_dist_mito&er&nuc_tiny_unet_lab_gp_aug_lab__0")
    store.shared_run_names()


def test_reading_writes_nothing_into_the_registry(pack_store, tmp_path):
    if pack_store.backend == "files":
        before = tree_digest(tmp_path / "configs")
        read_everything(pack_store)
        read_everything(FileConfigStore(tmp_path / "configs"))
        assert tree_digest(tmp_path / "configs") == before
    else:
        before = mongo_digest(pack_store)
        read_everything(pack_store)
        assert mongo_digest(pack_store) == before


def test_a_read_only_folder_is_readable(tmp_path):
    shutil.copytree(PACK / "configs", tmp_path / "configs")
    folders = [tmp_path / "configs", *[p for p in (tmp_path / "configs").rglob("*") if p.is_dir()]]
    for folder in folders:
        folder.chmod(0o555)
    try:
        read_everything(FileConfigStore(tmp_path / "configs"))
    finally:
        for folder in folders:
            folder.chmod(0o755)


# --- documents other DaCapo 0.3.x versions wrote: read leniently, written strictly ----------------


def other_version_run() -> dict[str, Any]:
    (doc,) = [d for d in mongo_documents("runs") if d["name"] == "lab_dist_mito_ints"]
    doc = dict(doc)
    doc["num_iterations"] = float(doc["num_iterations"])
    doc["task_config"] = {**doc["task_config"], "mask_distances": 1}
    doc["trainer_config"] = {**doc["trainer_config"], "from_a_newer_dacapo": "x"}
    return doc


@pytest.mark.parametrize("backend", ["files", "mongomock"])
def test_another_versions_document_reads_with_a_warning_per_field(backend, tmp_path, caplog):
    store = empty_store(backend, tmp_path)
    if backend == "files":
        (store.path / "runs").mkdir(parents=True)
        (store.path / "runs" / "lab_dist_mito_ints.yaml").write_text(yaml.dump(other_version_run()))
    else:
        store.db["runs"].insert_one(other_version_run())
    run = store.retrieve_run_config("lab_dist_mito_ints")
    assert run.num_iterations == 10 and type(run.num_iterations) is int
    assert run.task_config.mask_distances is True
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "trainer_config.from_a_newer_dacapo: unknown key ignored" in warned
    assert "num_iterations: 10.0 read as 10" in warned
    assert "task_config.mask_distances: 1 read as True" in warned


@pytest.mark.parametrize("backend", ["files", "mongomock"])
def test_a_lossy_number_is_an_error_naming_the_field(backend, tmp_path):
    store = empty_store(backend, tmp_path)
    doc = {**other_version_run(), "num_iterations": 10.5}
    if backend == "files":
        (store.path / "runs").mkdir(parents=True)
        (store.path / "runs" / "lab_dist_mito_ints.yaml").write_text(yaml.dump(doc))
    else:
        store.db["runs"].insert_one(doc)
    with pytest.raises(ConfigValidationError, match=r"num_iterations: expected int, got 10\.5"):
        store.retrieve_run_config("lab_dist_mito_ints")


def test_writing_stays_strict():
    with pytest.raises(ConfigValidationError, match="num_iterations"):
        converter.structure(other_version_run(), RunConfig)


def test_get_documents_refuses_a_shared_run_name_as_get_document_does(mongo_pack):
    with pytest.raises(AmbiguousNameError, match="'lab_inner_mito'"):
        mongo_pack.get_documents("runs", ["lab_inner_mito"])
