"""Take the README's dashboard screenshots with `dacapo-store serve` and headless Chromium: a real
DaCapo run (a copy of the DaCapo 0.3.5 fixture pack, tests/data/dacapo-0.3.5/files) and the demo.

Run: python docs/screenshots.py [DEMO_DIR]   (builds the demo there first if it has none)
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from dacapo_store.web.browser import launch

DOCS = Path(__file__).resolve().parent
PACK = DOCS.parent / "tests" / "data" / "dacapo-0.3.5" / "files"
CLI = [sys.executable, "-c", "from dacapo_store.cli import main; main()"]
DACAPO_RUN = "hela_semantic_mito%26er%26nuc_8nm_dist_mito%26er%26nuc_tiny_unet_lab_gp_aug_lab__0"


def main() -> None:
    demo = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp()) / "dacapo-demo"
    if not (demo / "configs").is_dir():
        subprocess.run([*CLI, "demo", str(demo)], check=True, stdout=subprocess.DEVNULL)
    pack = Path(tempfile.mkdtemp()) / "dacapo-0.3.5"
    shutil.copytree(PACK, pack, symlinks=True)  # serving never writes, but the copy is ours
    shoot(
        pack,
        {"width": 1400, "height": 1000},
        [("dacapo-run.png", f"runs/{DACAPO_RUN}"), ("dacapo-runs.png", "")],
    )
    shoot(
        demo,
        {"width": 1280, "height": 800},
        [
            ("dashboard-runs.png", ""),
            ("dashboard-run.png", "runs/blobs_baseline"),
            ("dashboard-compare.png", "compare?runs=blobs_baseline&runs=blobs_finetune&metric=f1_score"),
        ],
    )


def shoot(registry: Path, viewport: dict, shots: list[tuple[str, str]]) -> None:
    server = subprocess.Popen(
        [*CLI, "--store", f"files:{registry}", "serve", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        url = re.search(r"(http://\S+/)", server.stdout.readline()).group(1)
        with sync_playwright() as p, tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
            context = launch(p, profile, viewport=viewport)
            page = context.new_page()
            for name, path in shots:
                page.goto(url + path)
                page.wait_for_function(  # every chart drawn (a page may have none)
                    "() => [...document.querySelectorAll('[data-chart]')].every(e => e.dataset.ready)"
                )
                page.screenshot(path=str(DOCS / name), full_page=False)
                print(DOCS / name)
            context.close()
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
