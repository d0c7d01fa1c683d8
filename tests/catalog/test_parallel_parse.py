"""A large Sigma tree is parsed on two processes: the same catalog, report and errors as serially.

The serial path (`parallel=False`) is the reference; the forked path is forced with
`parallel=True` whatever the machine, and the default is checked to pick it only for large input.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.auth.service import create_token
from app.catalog import parallel
from app.catalog import service as catalog_service
from app.catalog.formats import sigma
from app.catalog.formats.sigma import SigmaImporter
from app.catalog.source import open_source
from app.core.config import Limits, Settings
from app.core.db import make_engine
from app.core.errors import InvalidInput
from app.main import create_app
from tests.catalog.formats.test_sigma import BROKEN, DUPLICATE, GOOD, NO_ID, NO_TAGS
from tests.cli.test_attack import kbmap
from tests.conftest import ROOT

pytestmark = pytest.mark.integration  # worker processes, kbmap in a subprocess

BIG = ("sigma-attack18", "sigma")


@pytest.mark.parametrize("name", BIG)
def test_shared_catalogs_parse_the_same_on_both_paths(
    catalog_dir: Path, limits: Limits, name: str
) -> None:
    source = open_source(catalog_dir / f"{name}-rules.tar.gz", limits)
    started = SigmaImporter().start(source, limits, parallel=True)
    assert started.background
    forked = started.result()
    serial = SigmaImporter().parse(source, limits, parallel=False)
    assert forked == serial  # every rule, field by field, and every issue, in the same order
    assert [r.path for r in forked.rules] == sorted(r.path or "" for r in forked.rules)
    assert len(forked.rules) > 4000


def test_import_report_is_the_same_on_both_paths(
    catalog_dir: Path, loaded_settings: Settings
) -> None:
    engine = make_engine(loaded_settings.database_url)
    source = open_source(catalog_dir / "sigma-attack18-rules.tar.gz", loaded_settings.limits)
    reports = {}
    for path in (True, False):
        started = SigmaImporter().start(source, loaded_settings.limits, parallel=path)
        result = catalog_service.import_catalog(
            engine, loaded_settings, source=source, name=f"s-{path}", started=started
        )
        reports[path] = (result.catalog.rule_count, result.catalog.report)
    engine.dispose()
    assert reports[True] == reports[False]
    assert reports[True][0] == 4002


def _hand_made_tree(make_tree: Callable[[dict[str, str]], Path]) -> Path:
    """Errors and warnings of every kind, the broken file first in file order."""
    files = {"deprecated/aa_broken.yml": BROKEN, "deprecated/no_id.yaml": NO_ID}
    for i in range(40):
        files[f"rules/r{i:02}.yml"] = GOOD.replace("11111111-", f"{i:08}-")
    files |= {
        "rules/good.yml": GOOD,
        "rules/zz_no_tags.yml": NO_TAGS,
        "unsupported/copy.yml": DUPLICATE,
    }
    return make_tree(files)


def test_errors_read_by_the_child_are_those_of_a_serial_parse(
    make_tree: Callable[[dict[str, str]], Path],
    limits: Limits,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = tmp_path / "readers.log"
    read = sigma._read_file

    def logged(job: tuple[str, bytes, str | None], **kw: object) -> object:
        out = read(job, **kw)  # type: ignore[arg-type]
        with open(log, "a") as fh:
            fh.write(f"{job[0]}\t{os.getpid()}\n")
        return out

    monkeypatch.setattr(sigma, "_read_file", logged)
    source = open_source(_hand_made_tree(make_tree), limits)
    started = SigmaImporter().start(source, limits, parallel=True)
    deadline = time.monotonic() + 60
    while len(_lines(log)) < 45 and time.monotonic() < deadline:  # the child reads every file
        time.sleep(0.02)
    readers = dict(line.split("\t") for line in _lines(log))
    assert readers["deprecated/aa_broken.yml"] != str(os.getpid())
    with pytest.raises(InvalidInput) as forked:
        catalog_service.parse_source(source, format_id="sigma", limits=limits, started=started)
    with pytest.raises(InvalidInput) as serial:
        catalog_service.parse_source(
            source,
            format_id="sigma",
            limits=limits,
            started=SigmaImporter().start(source, limits, parallel=False),
        )
    assert str(forked.value) == str(serial.value)
    assert forked.value.issues == serial.value.issues and len(serial.value.issues) == 2
    unclosed = 1 + BROKEN.splitlines().index("    sel: [unclosed")
    assert str(forked.value).startswith(f"deprecated/aa_broken.yml, line {unclosed}: invalid YAML")


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_cli_error_from_a_large_tree_is_one_line_with_the_file(
    catalog_dir: Path, limits: Limits, tmp_path: Path
) -> None:
    tree = tmp_path / "sigma"
    tree.mkdir()
    subprocess.run(
        ["tar", "-xzf", str(catalog_dir / "sigma-attack18-rules.tar.gz"), "-C", str(tree)],
        check=True,
    )
    (tree / "deprecated" / "aa_broken.yml").write_text(BROKEN)
    source = open_source(tree, limits)
    assert parallel.can_fork(sum(len(d) for _, d in source.files())) == (
        len(os.sched_getaffinity(0)) >= 2
    )
    with pytest.raises(InvalidInput) as serial:
        catalog_service.parse_source(
            source,
            format_id="auto",
            limits=limits,
            started=SigmaImporter().start(source, limits, parallel=False),
        )
    proc = kbmap("catalog", "import", str(tree), db=f"sqlite:///{tmp_path / 'k.sqlite'}")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [f"kbmap: {serial.value}"]
    unclosed = 1 + BROKEN.splitlines().index("    sel: [unclosed")
    assert proc.stderr.startswith(f"kbmap: deprecated/aa_broken.yml, line {unclosed}: invalid")


def test_small_trees_stay_in_one_process(
    make_tree: Callable[[dict[str, str]], Path], limits: Limits
) -> None:
    source = open_source(_hand_made_tree(make_tree), limits)
    assert sum(len(d) for _, d in source.files()) < parallel.MIN_BYTES
    assert SigmaImporter().start(source, limits).background is False


def _square_or_fail(x: int) -> int:
    if x in (300, 700):
        raise ValueError(f"job {x}")
    return x * x


def test_start_map_raises_what_a_serial_run_raises() -> None:
    jobs = list(range(1000))
    with pytest.raises(ValueError, match="job 300") as serial:
        parallel.start_map(_square_or_fail, jobs, [1] * 1000, parallel=False).result()
    with pytest.raises(ValueError, match="job 300") as forked:
        parallel.start_map(_square_or_fail, jobs, [1] * 1000, parallel=True).result()
    assert str(forked.value) == str(serial.value)


def test_start_map_survives_a_child_that_dies() -> None:
    caller = os.getpid()

    def square_or_die(x: int) -> int:
        if os.getpid() != caller:
            os._exit(3)  # the child goes away without a word, mid-chunk
        return x * x

    pending = parallel.start_map(square_or_die, list(range(500)), [1] * 500, parallel=True)
    assert pending.background
    assert pending.result() == [x * x for x in range(500)]


def test_start_map_with_results_that_do_not_pickle(capfd: pytest.CaptureFixture[str]) -> None:
    class Local:  # pickle refuses a class defined in a function: the child cannot send these
        def __init__(self, x: int) -> None:
            self.x = x

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Local) and other.x == self.x

    pending = parallel.start_map(Local, list(range(200)), [1] * 200, parallel=True)
    assert pending.result() == [Local(x) for x in range(200)]
    assert capfd.readouterr().err == ""  # no traceback from the child over the caller's output


SCRIPT = """
from app.catalog.formats.sigma import SigmaImporter
from app.catalog.source import open_source
from app.core.config import Limits

print("script body ran")
source = open_source({tarball!r}, Limits())
started = SigmaImporter().start(source, Limits())
print("background", started.background, "rules", len(started.result().rules))
"""


def test_a_script_without_main_guard_runs_once(catalog_dir: Path, tmp_path: Path) -> None:
    script = tmp_path / "import_rules.py"
    script.write_text(SCRIPT.format(tarball=str(catalog_dir / "sigma-attack18-rules.tar.gz")))
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    two_cores = len(os.sched_getaffinity(0)) >= 2
    assert proc.stdout.splitlines() == ["script body ran", f"background {two_cores} rules 4002"]


def test_api_upload_parses_in_the_background_and_reports_the_same(
    catalog_dir: Path, loaded_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server imports on a worker thread of a threaded process: the fork works from there."""
    backgrounds: list[bool] = []
    real = parallel.start_map

    def recorded(*args: Any, **kw: Any) -> Any:
        pending = real(*args, **kw)
        backgrounds.append(pending.background)
        return pending

    monkeypatch.setattr(sigma, "start_map", recorded)
    tarball = catalog_dir / "sigma-attack18-rules.tar.gz"
    with TestClient(create_app(loaded_settings)) as client:
        engine = client.app.state.engine  # type: ignore[attr-defined]
        _, token = create_token(engine, loaded_settings, name="w", scopes=["write"])
        response = client.post(
            "/api/v1/catalogs",
            files={"file": (tarball.name, tarball.read_bytes())},
            data={"name": "uploaded"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 201, response.text
        source = open_source(tarball, loaded_settings.limits)
        serial = catalog_service.import_catalog(
            engine,
            loaded_settings,
            source=source,
            name="serial",
            started=SigmaImporter().start(source, loaded_settings.limits, parallel=False),
        )
    assert backgrounds[0] == parallel.can_fork(parallel.MIN_BYTES)
    assert response.json()["report"] == serial.catalog.report.model_dump(mode="json")
