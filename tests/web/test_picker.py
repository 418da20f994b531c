"""The criterion picker's rules, as pure functions: channel x metric, the default choice, labels."""

from __future__ import annotations

import pytest
from starlette.datastructures import QueryParams

from dacapo_store.web.params import BadRequest, NotFound, Params
from dacapo_store.web.picker import choose, criterion_parts, default_choice, short_labels

DIRECTIONS = {
    **{f"{h}__{m}": m != "voi" for h in ("mito", "er", "nuc") for m in ("dice", "voi", "f1_score")},
    "voi": False,
    "blipp_score": False,
}


@pytest.mark.parametrize(
    ("criterion", "parts"),
    [
        ("mito__dice", ("mito", "dice")),
        ("mito__f1_score_with_tolerance", ("mito", "f1_score_with_tolerance")),
        ("a__b__voi", ("a__b", "voi")),
        ("voi", (None, "voi")),
        ("__dice", (None, "__dice")),
        ("dice__", (None, "dice__")),
    ],
)
def test_a_criterion_is_a_channel_and_a_metric(criterion, parts):
    assert criterion_parts(criterion) == parts


def pick(query: str, default=()) -> dict:
    return choose(
        Params(QueryParams(query), ("criterion", "metric", "channel")), DIRECTIONS, default, where="run r"
    )


def test_without_a_choice_the_default_is_chosen():
    found = pick("", default=["voi"])
    assert found["chosen"] == ["voi"] and found["default"] is True and found["total"] == 11
    assert found["metrics"] == ["blipp_score", "dice", "f1_score", "voi"]
    assert found["channels"] == ["er", "mito", "nuc", ""]
    assert found["grid"]["voi"] == {"er": "er__voi", "mito": "mito__voi", "nuc": "nuc__voi", "": "voi"}
    assert found["criteria"]["mito__dice"] == {"channel": "mito", "metric": "dice", "higher_is_better": True}


@pytest.mark.parametrize(
    ("query", "chosen"),
    [
        ("metric=dice", ["er__dice", "mito__dice", "nuc__dice"]),
        ("metric=voi", ["er__voi", "mito__voi", "nuc__voi", "voi"]),  # the channel-less one too
        ("metric=voi&channel=mito", ["mito__voi", "voi"]),
        ("channel=nuc", ["nuc__dice", "nuc__f1_score", "nuc__voi"]),
        ("metric=dice&metric=f1_score&channel=er", ["er__dice", "er__f1_score"]),
        ("criterion=blipp_score&metric=dice&channel=er", ["blipp_score", "er__dice"]),
        ("criterion=mito__dice,er__voi", ["er__voi", "mito__dice"]),
    ],
)
def test_the_url_names_criteria_metrics_and_channels(query, chosen):
    found = pick(query, default=["voi"])
    assert found["chosen"] == chosen and found["default"] is False


@pytest.mark.parametrize(
    ("query", "error", "message"),
    [
        ("metric=hausdorff", NotFound, "run r has no metric 'hausdorff'; it has: 'blipp_score', 'dice'"),
        ("channel=ves", NotFound, "run r has no channel 'ves'"),
        ("criterion=ves__dice", NotFound, "run r has no criterion 'ves__dice'"),
        ("criterion=no%20such", BadRequest, "invalid criterion 'no such'"),
    ],
)
def test_what_a_page_lacks_is_named(query, error, message):
    with pytest.raises(error, match=message):
        pick(query)


def test_the_default_is_everything_up_to_12_charts_else_one_metric():
    assert default_choice(["b", "a"]) == ["a", "b"]
    many = [
        f"{h}__{m}" for h in ("mito", "er", "nuc") for m in ("dice", "voi", "recall", "precision", "jaccard")
    ]
    assert default_choice(many) == ["er__dice", "mito__dice", "nuc__dice"]  # most candidates, then by name
    assert default_choice(many, preferred="nuc__voi") == ["er__voi", "mito__voi", "nuc__voi"]
    assert default_choice([*many, "x__recall"], preferred="absent") == [
        "er__recall",
        "mito__recall",
        "nuc__recall",
        "x__recall",
    ]
    assert default_choice([]) == []


def test_short_labels_keep_what_tells_names_apart():
    hela = [
        "jrc_hela-2_[mito&er]_jrc_hela-2_[mito&er]_mito_er_nuc_8nm_gt_mito&er&nuc_8nm",
        "jrc_hela-3_[mito&er]_jrc_hela-3_[mito&er]_mito_er_nuc_8nm_gt_mito&er&nuc_8nm",
    ]
    assert short_labels(hela) == {hela[0]: "…2_[mito&er]_jrc_hela-2…", hela[1]: "…3_[mito&er]_jrc_hela-3…"}
    assert short_labels(["validate"]) == {"validate": "validate"}
    assert short_labels(["blobs_baseline", "blobs_finetune"]) == {  # short enough as they are
        "blobs_baseline": "blobs_baseline",
        "blobs_finetune": "blobs_finetune",
    }
    a, ab = "a" * 40, "a" * 40 + "b"
    assert short_labels([a, ab]) == {a: "a" * 16 + "…" + "a" * 17, ab: "a" * 16 + "…" + "a" * 16 + "b"}
    long = "x" * 50
    assert short_labels([long]) == {long: "x" * 16 + "…" + "x" * 17}
