"""The README and docs/: every relative link resolves, and the README's tour says what the commands print."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import no_options

from dacapo_store.cli import app

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    links = [m.group(1) for m in LINK.finditer(text)]
    broken = []
    for link in links:
        if re.match(r"[a-z]+:", link):
            continue  # http(s), mailto: not ours to check offline
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        missing = not target.exists() or ROOT not in target.parents
        if missing or (anchor and target.suffix == ".md" and anchor not in anchors(target)):
            broken.append(link)
    assert broken == [], f"{page.name} links what is not in the repository"


def test_the_readme_links_its_pages_and_shows_a_dacapo_run():
    readme = (ROOT / "README.md").read_text()
    assert "![" in readme and "(docs/dacapo-run.png)" in readme
    linked = {m.group(1) for m in LINK.finditer(readme)}
    for page in (ROOT / "docs").glob("*.md"):
        assert f"docs/{page.name}" in linked, f"docs/{page.name} is not linked from the README"


def test_the_tour_prints_what_the_readme_says(tmp_path, monkeypatch):
    """The tour's commands, run on the fixture pack as the README writes them."""
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(no_options(tmp_path / "options")))
    monkeypatch.chdir(ROOT)
    block = re.search(r"## A ten-line tour.*?```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    lines = [line for line in block.group(1).splitlines() if line.strip() and not line.startswith(" ")]
    env = dict(item.split("=", 1) for item in shlex.split(lines[0].replace(";", " ")))
    out = {}
    for line in lines[1:]:
        command = line.split("  #", 1)[0].strip()
        for key, value in env.items():
            command = command.replace(f"${{{key}}}", value).replace(f"${key}", value)
        argv = shlex.split(command)[1:]
        if "serve" in argv:
            continue
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 0, (command, result.output)
        out[argv[2]] = result.stdout
    run = env["RUN"]
    assert len(out["list"].split()) == 4 and run in out["list"].split()
    assert out["weights"].split()[:3] == ["15", "mito__dice=0.653104", "computed"]
    assert out["leaderboard"].splitlines()[1].split("\t")[:3] == ["1", run, "15"]
    assert f"<- {run} (by 10)" in out["lineage"]
    assert out["scores"].count("*") == 2 and "runs\t10" in out["info"]
