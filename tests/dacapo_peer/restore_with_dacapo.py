"""Run by a Python that imports real DaCapo 0.3.5 (never dacapo_store): DaCapo re-stores configs.

Usage: restore_with_dacapo.py REQUEST.json. The request names the backend ("files": a
configs folder; "mongo": a canonical extended-JSON dump of a database, loaded into
mongomock in insertion order) and the documents to re-store as DaCapo config objects
(DaCapo's converter structures them first, as an experiment script builds its configs).
Prints a JSON report: per document "ok" or DaCapo's error, and what changed in the store.

The config objects are the ones an experiment script writes in Python, so two things of
DaCapo's converter are set aside while building them: numbers are kept as written (its
cattrs turns the int `40` of a float field into `40.0`, and its own store then refuses the
document it wrote), and `TiffArrayConfig` is made visible where DaCapo looks classes up
(DaCapo 0.3.5 fails to, and hands back a dict it can't store again). Storing is DaCapo's.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import sys
from pathlib import Path

from bson import json_util


def files_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def main() -> None:
    request = json.loads(Path(sys.argv[1]).read_text())
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):  # DaCapo prints as it works
        import dacapo.store.conversion_hooks as hooks
        from dacapo.experiments import RunConfig
        from dacapo.experiments.architectures import ArchitectureConfig
        from dacapo.experiments.datasplits import DataSplitConfig
        from dacapo.experiments.datasplits.datasets import DatasetConfig
        from dacapo.experiments.datasplits.datasets.arrays import ArrayConfig
        from dacapo.experiments.datasplits.datasets.arrays.tiff_array_config import TiffArrayConfig
        from dacapo.experiments.tasks import TaskConfig
        from dacapo.experiments.trainers import TrainerConfig
        from dacapo.store.converter import converter

        hooks.TiffArrayConfig = TiffArrayConfig
        for kind in (int, float):
            converter.register_structure_hook(kind, lambda value, _: value)

        classes = {
            "runs": RunConfig,
            "tasks": TaskConfig,
            "architectures": ArchitectureConfig,
            "trainers": TrainerConfig,
            "datasplits": DataSplitConfig,
            "datasets": DatasetConfig,
            "arrays": ArrayConfig,
        }

        if request["backend"] == "files":
            from dacapo.store.file_config_store import FileConfigStore

            folder = Path(request["path"])
            before = files_digest(folder)
            store = FileConfigStore(folder)
        else:
            import dacapo.store.mongo_config_store as mongo_module
            import mongomock

            client = mongomock.MongoClient()
            db = client["dacapo"]
            for collection, docs in json_util.loads(Path(request["dump"]).read_text()).items():
                if docs:
                    db[collection].insert_many(docs)
            mongo_module.MongoClient = lambda *args, **kwargs: client
            store = mongo_module.MongoConfigStore("mongodb://localhost", "dacapo")
            before = {c: list(db[c].find({})) for c in sorted(db.list_collection_names())}

        results = []
        for item in request["documents"]:
            kind, doc = item["kind"], json_util.loads(json.dumps(item["document"]))
            try:
                config = converter.structure(doc, classes[kind])
                getattr(store, f"store_{kind[:-1]}_config")(config)
                results.append({"kind": kind, "name": doc["name"], "result": "ok"})
            except Exception as exc:
                results.append(
                    {"kind": kind, "name": doc["name"], "result": f"{type(exc).__name__}: {str(exc)[:300]}"}
                )

        if request["backend"] == "files":
            after = files_digest(folder)
        else:
            after = {c: list(db[c].find({})) for c in sorted(db.list_collection_names())}
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    print(json.dumps({"results": results, "changed": changed}))


if __name__ == "__main__":
    main()
