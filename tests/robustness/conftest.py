"""Prints how many cases the schemathesis runs generated, at the end of the test session."""

from __future__ import annotations

import sys

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    module = sys.modules.get("tests.robustness.test_api_schema")
    cases = getattr(module, "CASES", None)
    if cases:
        runs = ", ".join(f"{run}: {n}" for run, n in sorted(cases.items()))
        terminalreporter.write_line(f"schemathesis cases generated: {sum(cases.values())} ({runs})")
