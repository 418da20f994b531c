"""The DaCapo adapter where DaCapo is missing or another version: one clear error, nothing patched;
and DaCapo stays optional (nothing else of dacapo_store imports it). DaCapo itself drives the
adapter in `test_dacapo_live.py`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import no_options

from dacapo_store import dacapo_adapter
from dacapo_store.cli import app
from dacapo_store.errors import DacapoStoreError, UnsupportedDacapoError

CHECKOUT = Path(__file__).parent.parent


def dacapo_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("dacapo") is not None


needs_no_dacapo = pytest.mark.skipif(dacapo_importable(), reason="DaCapo is installed in this Python")


@needs_no_dacapo
def test_install_without_dacapo_is_one_clear_error_and_patches_nothing():
    with pytest.raises(UnsupportedDacapoError) as caught:
        dacapo_adapter.install()
    message = str(caught.value)
    assert "DaCapo is not installed in this Python" in message and sys.executable in message
    assert "pip install dacapo-ml==0.3.5" in message
    assert isinstance(caught.value, DacapoStoreError) and isinstance(caught.value, ImportError)
    assert not dacapo_adapter.installed()
    dacapo_adapter.uninstall()  # nothing installed: nothing to do


@needs_no_dacapo
def test_the_dacapo_command_without_dacapo_exits_2_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("DACAPO_OPTIONS_FILE", str(no_options(tmp_path / "options")))
    (tmp_path / "registry").mkdir()
    tmp_path = tmp_path / "registry"
    result = CliRunner().invoke(app, ["--store", f"files:{tmp_path}", "dacapo", "train", "-r", "my_run"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "DaCapo is not installed" in result.stderr
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []  # nothing written


def fake_dacapo(root: Path, distribution: str | None, run_fields: str = "name: str = attr.ib()") -> Path:
    """A package named `dacapo` that says `__version__ = "0.3.5"` (as DaCapo main does too), with the
    given `dacapo-ml` distribution version: enough to meet the version gate, nothing else of DaCapo."""
    package = root / "dacapo"
    (package / "experiments").mkdir(parents=True)
    (package / "__init__.py").write_text('__version__ = "0.3.5"\n')
    (package / "experiments" / "__init__.py").write_text(
        f"import attr\n\n@attr.s\nclass RunConfig:\n    {run_fields}\n"
    )
    if distribution is not None:
        info = root / f"dacapo_ml-{distribution}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: dacapo-ml\nVersion: {distribution}\n")
    return root


def install_in(path: Path) -> dict:
    code = textwrap.dedent(
        """
        import json, sys
        from dacapo_store import dacapo_adapter
        try:
            dacapo_adapter.install()
            print(json.dumps({"installed": dacapo_adapter.installed()}))
        except Exception as exc:
            print(json.dumps({"error": type(exc).__name__, "message": str(exc),
                              "installed": dacapo_adapter.installed()}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": f"{path}:{CHECKOUT}", "PATH": "/usr/bin:/bin"},
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_dacapo_main_is_refused_though_it_says_0_3_5(tmp_path):
    out = install_in(fake_dacapo(tmp_path, "0.3.6.dev173+gf3dc388f"))
    assert out["error"] == "UnsupportedDacapoError" and out["installed"] is False
    assert (
        "supports DaCapo 0.3.5" in out["message"] and "has DaCapo 0.3.6.dev173+gf3dc388f at" in out["message"]
    )


def test_a_source_checkout_of_dacapo_main_is_told_by_its_classes(tmp_path):
    checkout = fake_dacapo(
        tmp_path, None, run_fields="name: str = attr.ib()\n    batch_size: int = attr.ib()"
    )
    out = install_in(checkout)
    assert (
        out["error"] == "UnsupportedDacapoError" and "has DaCapo main (a source checkout)" in out["message"]
    )


def test_a_dacapo_that_fails_to_import_says_why(tmp_path):
    (tmp_path / "dacapo").mkdir()
    (tmp_path / "dacapo" / "__init__.py").write_text("import a_dependency_that_is_missing\n")
    out = install_in(tmp_path)
    assert out["error"] == "UnsupportedDacapoError"
    assert "a_dependency_that_is_missing" in out["message"] and out["installed"] is False


def test_nothing_of_dacapo_store_imports_dacapo_unless_the_adapter_is_installed(tmp_path):
    # a `dacapo` that records being imported: only `dacapo_adapter.stores` (imported by install) may
    (tmp_path / "dacapo").mkdir()
    (tmp_path / "dacapo" / "__init__.py").write_text("raise RuntimeError('dacapo was imported')\n")
    code = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        import dacapo_store
        skipped = {"dacapo_store.dacapo_adapter.stores"}
        for info in pkgutil.walk_packages(dacapo_store.__path__, "dacapo_store."):
            if info.name not in skipped:
                importlib.import_module(info.name)
        print("dacapo" in sys.modules, len(sys.modules))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": f"{tmp_path}:{CHECKOUT}", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[0] == "False"
