"""Archive members read from the unpacked archive in memory: what tarfile's extraction gives.

The reference is tarfile itself (`extractfile`, and pathlib for member names), on the shared
Sigma archives and on hand-made archives with odd names, a sparse member and a cut-off end.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path, PurePosixPath

import pytest

from app.catalog.source import open_source, source_from_bytes
from app.core.config import Limits
from app.core.errors import InvalidInput


def _reference(data: bytes) -> list[tuple[str, bytes]]:
    out = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar:
            fh = tar.extractfile(m) if m.isfile() else None
            if fh is not None:
                out.append((PurePosixPath(m.name).as_posix().removeprefix("./"), fh.read()))
    return sorted(out)


@pytest.mark.parametrize("name", ["sigma-attack18", "sigma", "open-xp-rules"])
def test_shared_archives_read_as_tarfile_extracts_them(
    catalog_dir: Path, limits: Limits, name: str
) -> None:
    tarball = catalog_dir / f"{name}-rules.tar.gz"
    files = open_source(tarball, limits).files()
    assert files == _reference(tarball.read_bytes())
    assert len(files) > 100


def _tar(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_odd_member_names_are_normalised_as_before(limits: Limits) -> None:
    members = [
        ("./rules/a.yml", b"a"),
        ("rules//b.yml", b"b"),
        ("rules/./c.yml", b"c"),
        ("rules/.hidden/d.yml", b"d"),
        ("rules/e f.yml", b"e"),
        ("rules/\u00e9.yml", b"f"),
    ]
    data = _tar(members)
    files = source_from_bytes("x.tar", data, limits).files()
    assert files == _reference(data)
    assert [p for p, _ in files] == sorted(str(PurePosixPath(n)) for n, _ in members)


def test_a_cut_off_archive_is_refused(limits: Limits) -> None:
    data = _tar([("rules/a.yml", b"x" * 5000), ("rules/b.yml", b"y" * 5000)])
    cut = data[: 512 + 3000]  # inside the first member's data
    with pytest.raises(InvalidInput, match="not a readable tar archive"):
        source_from_bytes("x.tar.gz", gzip.compress(cut), limits)


def test_a_sparse_member_reads_as_tarfile_reads_it(limits: Limits) -> None:
    # a GNU sparse member ('S'): 4 data bytes at offset 8 of a 16-byte file, holes elsewhere
    info = tarfile.TarInfo("rules/sparse.yml")
    info.type = tarfile.GNUTYPE_SPARSE
    info.size = 4
    header = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    header[386:398] = b"00000000010\0"  # sparse[0].offset = 8
    header[398:410] = b"00000000004\0"  # sparse[0].numbytes = 4
    header[483:495] = b"00000000020\0"  # realsize = 16
    header[148:156] = b" " * 8  # the checksum counts its own field as spaces
    header[148:156] = b"%06o\0 " % sum(header)
    data = bytes(header) + b"data".ljust(512, b"\0") + b"\0" * 1024
    assert source_from_bytes("x.tar", data, limits).files() == _reference(data)
    assert _reference(data) == [("rules/sparse.yml", b"\0" * 8 + b"data" + b"\0" * 4)]
