"""Fuzz the STIX reader and every catalog importer for longer than the test suite does.

    python scripts/fuzz_parsers.py --examples 5000          # each of the four targets
    python scripts/fuzz_parsers.py --target catalog-mutated --examples 20000

Same strategies and property as tests/robustness/test_fuzz_parsers.py (a result or a KbmapError,
never another exception); prints the examples run per target and the first failure, if any.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.robustness import fuzzing

TARGETS: dict[str, tuple[st.SearchStrategy[Any], Callable[[Any], object]]] = {
    "stix-mutated": (fuzzing.mutated_bundles(), lambda raw: fuzzing.check_stix(raw, "18.1")),
    "stix-random": (fuzzing.RANDOM_BUNDLES, lambda raw: fuzzing.check_stix(raw, "1.0")),
    "catalog-mutated": (fuzzing.mutated_catalogs(), lambda up: fuzzing.check_catalog(*up)),
    "catalog-random": (fuzzing.RANDOM_CATALOGS, lambda up: fuzzing.check_catalog(*up)),
}


def run(name: str, examples: int) -> bool:
    strategy, check = TARGETS[name]
    count = 0

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(value=strategy)
    def target(value: Any) -> None:
        nonlocal count
        count += 1
        check(value)

    start = time.perf_counter()
    try:
        target()
    except Exception:
        print(f"{name}: FAILED after {count} examples")
        traceback.print_exc()
        return False
    print(f"{name}: {count} examples, no failure ({time.perf_counter() - start:.1f} s)")
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000, help="examples per target")
    parser.add_argument("--target", choices=sorted(TARGETS), action="append")
    args = parser.parse_args()
    ok = [run(name, args.examples) for name in args.target or TARGETS]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
