"""Take the README's dashboard screenshots: the demo registry, `dacapo-store serve`, headless Chromium.

Run: python docs/screenshots.py [DEMO_DIR]   (builds the demo there first if it has none)
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from dacapo_store.web.browser import launch

DOCS = Path(__file__).resolve().parent
CLI = [sys.executable, "-c", "from dacapo_store.cli import main; main()"]


def main() -> None:
    demo = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp()) / "dacapo-demo"
    if not (demo / "configs").is_dir():
        subprocess.run([*CLI, "demo", str(demo)], check=True, stdout=subprocess.DEVNULL)
    server = subprocess.Popen(
        [*CLI, "--store", f"files:{demo}", "serve", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        url = re.search(r"(http://\S+/)", server.stdout.readline()).group(1)
        with sync_playwright() as p:
            context = launch(p, viewport={"width": 1280, "height": 800})
            page = context.new_page()
            shots = [
                ("dashboard-runs.png", ""),
                ("dashboard-run.png", "runs/blobs_baseline"),
                ("dashboard-compare.png", "compare?runs=blobs_baseline&runs=blobs_finetune&metric=f1_score"),
            ]
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
