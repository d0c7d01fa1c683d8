"""The wheel carries kb/: installed outside the checkout it serves the shipped catalog, the
log-source mappings and the JSON Schemas, exactly as the checkout's files say."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, catalog_file

KB = ROOT / "kb"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip wheel .` then the wheel unpacked into a folder outside the checkout."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("kbmap-*.whl")
    site = out / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    return site


def _run(site: Path, cwd: Path, *args: str, db: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site), "KBMAP_DATABASE_URL": db}
    code = "import sys; from app.cli.main import main; sys.argv[0] = 'kbmap'; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_wheel_holds_every_kb_file(installed: Path) -> None:
    shipped = {p.relative_to(KB) for p in KB.rglob("*") if p.is_file()}
    in_wheel = {
        p.relative_to(installed / "app" / "kb") for p in (installed / "app" / "kb").rglob("*")
    }
    assert shipped and shipped <= in_wheel
    for rel in shipped:
        assert (installed / "app" / "kb" / rel).read_bytes() == (KB / rel).read_bytes()
    for schema in (installed / "app" / "kb" / "schemas").glob("*.json"):
        assert json.loads(schema.read_text())["$schema"]


def test_installed_wheel_imports_the_shipped_catalog(
    installed: Path, loaded_copy: str, tmp_path: Path
) -> None:
    """By name, from the wheel's own kb/: every rule of the shipped file."""
    proc = _run(
        installed, tmp_path, "catalog", "import", "maxpatrol-siem", "--json", db=loaded_copy
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    raw = yaml.safe_load((KB / "catalogs" / "maxpatrol-siem.yaml").read_text())
    assert report["name"] == raw["name"]
    assert report["rule_count"] == len(raw["rules"])
    export = _run(
        installed, tmp_path, "catalog", "export", raw["name"], "-f", "json", db=loaded_copy
    )
    assert export.returncode == 0, export.stderr
    exported = sorted(r["id"] for r in json.loads(export.stdout)["rules"])
    assert exported == sorted(r["id"] for r in raw["rules"])


def test_installed_wheel_links_telemetry_with_its_own_mappings(
    installed: Path, loaded_copy: str, tmp_path: Path
) -> None:
    """Sigma rules reach data components only through kb/mappings/log-sources.yaml."""
    sigma = catalog_file("sigma-rules.tar.gz")
    proc = _run(installed, tmp_path, "catalog", "import", sigma, "--json", db=loaded_copy)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["report"]["rules_linked_to_data_components"] > 0


def test_installed_wheel_runs_from_site_not_the_checkout(installed: Path, tmp_path: Path) -> None:
    code = "import app.core.config as c; print(c.__file__); print(c.Settings().kb_dir)"
    env = {**os.environ, "PYTHONPATH": str(installed)}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    module, kb_dir = proc.stdout.split()
    assert Path(module).is_relative_to(installed)
    assert Path(kb_dir).is_relative_to(installed) and Path(kb_dir).is_dir()
    assert not Path(kb_dir).is_symlink()
