"""The restricted unpickler: DaCapo's globals only; anything else is refused and nothing runs."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from dacapo_store.errors import CorruptWeightsError, PickleCheckpointError
from dacapo_store.legacy.unpickler import load_checkpoint, load_stats_pickle
from dacapo_store.weights import LocalWeightsStore

from .conftest import MANIFEST, PACK


def torch_zip(path: Path, data_pkl: bytes) -> Path:
    """A file in torch's zip layout whose data.pkl is `data_pkl`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")
    return path


def calling(module: str, name: str, argument: str) -> bytes:
    """A protocol-2 pickle that calls module.name(argument) when loaded."""
    return (
        b"\x80\x02c"
        + f"{module}\n{name}\n".encode()
        + b"X"
        + len(argument).to_bytes(4, "little")
        + argument.encode()
        + b"\x85R."
    )


@pytest.mark.parametrize(
    ("module", "name"),
    [("os", "system"), ("builtins", "eval"), ("posix", "system"), ("dacapo.experiments.run", "Run")],
)
def test_a_checkpoint_naming_another_global_is_refused_and_nothing_runs(tmp_path, module, name):
    marker = tmp_path / "code_ran"
    command = f"touch {marker}" if name == "system" else f"open({str(marker)!r}, 'w')"
    path = torch_zip(tmp_path / "run" / "checkpoints" / "iterations" / "5", calling(module, name, command))
    store = LocalWeightsStore(tmp_path)
    with pytest.raises(PickleCheckpointError, match=rf"{module}\.{name}"):
        store.retrieve_weights("run", 5)
    assert not marker.exists()
    with pytest.raises(PickleCheckpointError, match="allow_pickle=True"):
        load_checkpoint(path)
    assert not marker.exists()


def test_a_dacapo_class_outside_the_allow_list_is_refused(tmp_path):
    # DaCapo's Weights holder is admitted; another DaCapo class in the same place is not
    good = (PACK / "files" / MANIFEST["checkpoints"][-1]["path"]).read_bytes()
    with zipfile.ZipFile(io.BytesIO(good)) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    pkl = next(n for n in members if n.endswith("/data.pkl"))
    members[pkl] = members[pkl].replace(
        b"dacapo.store.weights_store\nWeights\n", b"dacapo.store.weights_store\nEvil\n"
    )
    path = tmp_path / "ckpt"
    with zipfile.ZipFile(path, "w") as archive:
        for n, data in members.items():
            archive.writestr(n, data)
    with pytest.raises(PickleCheckpointError, match=r"dacapo\.store\.weights_store\.Evil"):
        load_checkpoint(path)


def test_a_stats_pickle_naming_another_global_is_refused(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "stats"
    path.write_bytes(calling("os", "system", f"touch {marker}"))
    with pytest.raises(PickleCheckpointError, match=r"os\.system"):
        load_stats_pickle(path)
    assert not marker.exists()


def test_stats_pickles_give_plain_numbers():
    run = MANIFEST["scores"][0]["run"]
    docs = load_stats_pickle(PACK / "files" / "stats" / "validation_scores" / run)
    value = docs[0]["scores"][0][0][0]
    assert type(value) is float


def test_a_plain_torch_save_of_state_dicts_loads(tmp_path):
    model = torch.nn.Linear(2, 3)
    path = tmp_path / "ckpt"
    torch.save({"model": model.state_dict(), "optimizer": None}, path)
    loaded, optimizer = load_checkpoint(path)
    assert optimizer is None
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())


def test_a_file_that_is_not_a_torch_zip_needs_allow_pickle(tmp_path):
    path = tmp_path / "ckpt"
    path.write_bytes(pickle.dumps({"model": {}}))
    with pytest.raises(PickleCheckpointError, match="allow_pickle=True"):
        load_checkpoint(path)


def test_a_damaged_dacapo_checkpoint_is_corrupt_not_a_pickle_question(tmp_path):
    good = (PACK / "files" / MANIFEST["checkpoints"][-1]["path"]).read_bytes()
    path = tmp_path / "run" / "checkpoints" / "iterations" / "9"
    path.parent.mkdir(parents=True)
    path.write_bytes(good[:-4000])
    with pytest.raises(CorruptWeightsError, match=r"iterations/9 is damaged"):
        LocalWeightsStore(tmp_path).retrieve_weights("run", 9, allow_pickle=True)
