"""Our YAML writer: DaCapo's full_load reads tuples back as tuples; our reader takes the fast path."""

from __future__ import annotations

import math

import pytest
import yaml
from conftest import full_run
from test_dacapo_pack import PACK

from dacapo_store import converter
from dacapo_store.config_store import yamlio

TRICKY = {
    "name": 'a[b]]"x!!python/tuple [1],] \\ é 日本 \U0001f600',
    "t": (1, 2, (3, "]", ",]")),
    "l": [(1,), [()], []],
    "e": (),
    "m": ((1, 2), (3.5, -4e-05)),
    "d": {"mito": {"__type__": "X", "x": (0, 1)}},
    "f": [1.0, 1e-05, 1e300, 0.0, -0.0],
    "n": None,
    "b": [True, False],
}


@pytest.fixture
def no_yaml_parser(monkeypatch):
    """Our own files must never need the YAML parser."""

    def refuse(*args, **kwargs):
        raise AssertionError("the YAML parser was used")

    monkeypatch.setattr(yamlio.yaml, "load", refuse)


def test_dacapo_reads_our_tuples_as_tuples():
    text = yamlio.dump(TRICKY)
    for loader in (yaml.FullLoader, getattr(yaml, "CFullLoader", yaml.FullLoader)):
        assert yaml.load(text, Loader=loader) == TRICKY


def test_we_read_our_own_files_without_the_yaml_parser(no_yaml_parser):
    doc = converter.unstructure(full_run())
    assert yamlio.load(yamlio.dump(doc)) == doc
    assert yamlio.load(yamlio.dump({k: v for k, v in TRICKY.items() if k != "name"})) == {
        k: v for k, v in TRICKY.items() if k != "name"
    }


def test_every_pack_document_written_by_us_reads_back_equal_both_ways():
    for file in sorted((PACK / "configs").glob("*/*.yaml")):
        theirs = yaml.full_load(file.read_text())
        ours = yamlio.dump(theirs)
        assert yaml.full_load(ours) == theirs, file
        assert yamlio.load(ours) == theirs, file
        assert yamlio.load(file.read_text()) == theirs, file  # DaCapo's block YAML, safely


def test_non_finite_floats_and_astral_characters_survive():
    doc = {"a": float("inf"), "b": float("-inf"), "name": "\U0001f600", "t": (float("inf"),)}
    back = yamlio.load(yamlio.dump(doc))
    assert back["a"] == math.inf and back["b"] == -math.inf and back["name"] == "\U0001f600"
    assert back["t"] == (math.inf,)
    assert math.isnan(yamlio.load(yamlio.dump({"x": float("nan")}))["x"])


def test_python_tags_other_than_tuple_are_refused():
    with pytest.raises(yaml.YAMLError):
        yamlio.load("a: !!python/object/apply:os.system ['true']\n")


def test_a_nul_in_a_key_is_refused():
    with pytest.raises(TypeError, match="NUL"):
        yamlio.dump({"\x00tuple": [1]})
