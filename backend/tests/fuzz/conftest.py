"""Reports the fuzzing runs' totals after the run."""

from __future__ import annotations


def pytest_terminal_summary(terminalreporter) -> None:
    from tests.fuzz.test_api_schema import TOTALS
    from tests.fuzz.test_protocol_fuzz import REQUESTS, STATUSES

    if REQUESTS:
        terminalreporter.write_sep("-", "protocol fuzzing (Hypothesis over the protocol endpoints)")
        terminalreporter.write_line(
            f"endpoints: {len(REQUESTS)}, requests: {sum(REQUESTS.values())}, "
            f"5xx: {sum(n for status, n in STATUSES.items() if status >= 500)}; "
            f"statuses {dict(sorted(STATUSES.items()))}")
    if not TOTALS.requests:
        return
    personas = ", ".join(f"{name}: {count}" for name, count in sorted(TOTALS.by_persona.items()))
    terminalreporter.write_sep("-", "API fuzzing (schemathesis over /api/openapi.json)")
    terminalreporter.write_line(f"operations: {len(TOTALS.operations)}, requests: {TOTALS.requests} ({personas}), "
                                f"5xx: {TOTALS.server_errors}")
