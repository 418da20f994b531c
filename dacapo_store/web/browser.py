"""How to open the dashboard in headless Chromium here: the tests, the screenshots and the bench.

Debian's Chromium (`apt-get install chromium`) driven by Playwright for Python; Playwright's own
browser downloads are not used. Nothing here imports Playwright: callers pass its handle.
"""

from __future__ import annotations

import os
from typing import Any

#: Where the browser is: `DACAPO_STORE_CHROMIUM`, else Debian's.
CHROMIUM = os.environ.get("DACAPO_STORE_CHROMIUM", "/usr/bin/chromium")

#: Flags for a closed network, as root: no sandbox, GPU, QUIC, first-run or background traffic.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def launch(playwright: Any, profile: str | os.PathLike[str], **options: Any) -> Any:
    """A headless Chromium context keeping its profile in the folder `profile` (the caller's to
    remove: a test's tmp folder, a `tempfile.TemporaryDirectory`)."""
    return playwright.chromium.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, args=list(FLAGS), headless=True, **options
    )
