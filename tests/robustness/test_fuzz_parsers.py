"""Fuzzing the pure parsers: STIX bundles and every catalog importer.

Property: on any input a parser returns its result or raises a KbmapError (a 4xx for the API, one
line for the CLI), never another exception (a 500, a traceback). Bounded: 200 examples a test.
"""

# ruff: noqa: E402  (hypothesis is a dev dependency: the module skips, or fails under CI, without it)

from __future__ import annotations

import pytest

from tests.robustness.support import require

pytestmark = pytest.mark.integration  # mutates whole real releases and catalogs: seconds each

require("hypothesis")

from hypothesis import HealthCheck, given, settings

from tests.robustness import fuzzing

FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_seeds_parse_cleanly() -> None:
    """The mutations start from inputs the parsers accept."""
    for raw in fuzzing.stix_seeds():
        import orjson

        parsed = fuzzing.check_stix(orjson.dumps(raw), version="18.1")
        assert parsed is not None and parsed.domain == "ics"
    for seed in fuzzing.catalog_seeds():
        name, data = ("seed.tar", fuzzing.tar_of(list(seed.files))) if seed.tree else seed.files[0]
        results = fuzzing.check_catalog(name, data)
        assert any(r.rules for r in results), seed.label


@FUZZ
@given(raw=fuzzing.mutated_bundles())
def test_stix_mutated_real_bundles(raw: bytes) -> None:
    fuzzing.check_stix(raw, version="18.1")


@FUZZ
@given(raw=fuzzing.RANDOM_BUNDLES)
def test_stix_random_input(raw: bytes) -> None:
    fuzzing.check_stix(raw, version="1.0")


@FUZZ
@given(upload=fuzzing.mutated_catalogs())
def test_catalog_importers_on_mutated_real_rules(upload: tuple[str, bytes]) -> None:
    fuzzing.check_catalog(*upload)


@FUZZ
@given(upload=fuzzing.RANDOM_CATALOGS)
def test_catalog_importers_on_random_input(upload: tuple[str, bytes]) -> None:
    fuzzing.check_catalog(*upload)
