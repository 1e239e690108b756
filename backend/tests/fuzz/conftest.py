"""Reports the API fuzzing harness's totals after the run."""

from __future__ import annotations


def pytest_terminal_summary(terminalreporter) -> None:
    from tests.fuzz.test_api_schema import TOTALS

    if not TOTALS.requests:
        return
    personas = ", ".join(f"{name}: {count}" for name, count in sorted(TOTALS.by_persona.items()))
    terminalreporter.write_sep("-", "API fuzzing (schemathesis over /api/openapi.json)")
    terminalreporter.write_line(f"operations: {len(TOTALS.operations)}, requests: {TOTALS.requests} ({personas}), "
                                f"5xx: {TOTALS.server_errors}")
