"""The whole DaCapo 0.3.5 pack in place, through every face, against its manifest (issue 17).

Its three scored runs, every criterion DaCapo's evaluators report on them (63 for the distance
task), over all datasets and on each: each face names the checkpoint the manifest's scores, best
files and checkpoints say, by the rule every face shares. DaCapo's files layout and its MongoDB
layout.
"""

from __future__ import annotations

import pytest
from conftest import no_options
from legacy.conftest import MANIFEST, expected_scores, open_layout, pins
from test_faces_agree import by_the_rule, check_faces, faces

from dacapo_store.config_store import FileConfigStore, MongoConfigStore

ENTRIES = {entry["run"]: entry for entry in MANIFEST["scores"]}
CHECKPOINTS = {run: {c["iteration"] for c in MANIFEST["checkpoints"] if c["run"] == run} for run in ENTRIES}
PINS = pins()


def scored(run: str) -> dict:
    """(criterion, dataset, iteration) -> value of the run, as the manifest has them."""
    return {
        (criterion, dataset, iteration): value
        for criterion, by_dataset in expected_scores(ENTRIES[run]).items()
        for dataset, values in by_dataset.items()
        for iteration, value in values.items()
    }


def oracle(run: str, criterion: str, dataset: str | None):
    entry = ENTRIES[run]
    run_pins = {(d, c): it for (r, d, c), it in PINS.items() if r == run}
    higher = entry["higher_is_better"][criterion]
    return by_the_rule(scored(run), run_pins, CHECKPOINTS[run], higher, criterion, dataset)


#: (criterion, dataset or None) of each run: every criterion DaCapo reports, over all datasets and each
KEYS = {run: [(c, d) for c in e["criteria"] for d in (None, *e["scores"])] for run, e in ENTRIES.items()}


@pytest.mark.parametrize("kind", ["files", "mongomock"])
def test_every_face_names_the_manifests_best_on_the_pack_in_place(kind, tmp_path, monkeypatch):
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(no_options(tmp_path / "options")))
    opened = open_layout(kind, tmp_path)
    layout = next(opened)
    if kind == "files":
        configs = FileConfigStore(layout.root / "configs")
        args = ["--store", f"files:{layout.root}"]
    else:
        configs = MongoConfigStore(client=layout.db.client, db_name=layout.db.name)
        args = None  # the command line reaches MongoDB by URI: the files layout covers it
    for run in ENTRIES:
        found = faces(configs, layout.store, [run], KEYS[run], args)
        check_faces([run], KEYS[run], oracle, scored, found, f"the pack ({kind})", with_cli=args is not None)
    assert PINS  # DaCapo's best files were among what was checked
    if kind == "files":  # reading wrote nothing into DaCapo's files (on MongoDB our config store
        next(opened, None)  # adds its own indexes to DaCapo's collections, by design)
