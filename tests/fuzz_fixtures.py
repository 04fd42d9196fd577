"""What every fuzz target shares: the case budget, seeded Hypothesis settings, the log checks.

Budget: each target names its CI case count; `FUZZ_EXAMPLES=N` multiplies every count by N for a
longer run (docs/robustness.md lists the counts of both). The runs are derandomized (seeded from
the test), keep no example database and have no per-case deadline, so CI runs the same cases
every time and a failure prints the case that caused it.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable

from hypothesis import HealthCheck, Phase, settings

# Counts of the cases each target ran, filled as the run goes, printed at the end of each test
# (pytest -s shows them; docs/robustness.md holds the counts of the CI and the long run).
CASES: Counter[str] = Counter()


def budget(ci_cases: int) -> int:
    """`ci_cases`, times FUZZ_EXAMPLES when that is set (a longer run)."""
    scale = int(os.environ.get("FUZZ_EXAMPLES", "1") or 1)
    return max(1, ci_cases * max(1, scale))


def fuzz_settings(ci_cases: int) -> settings:
    """Seeded Hypothesis settings for a target of `ci_cases` cases (times FUZZ_EXAMPLES)."""
    return settings(
        max_examples=budget(ci_cases),
        derandomize=True,
        database=None,
        deadline=None,
        phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


def count(target: str) -> None:
    CASES[target] += 1


def report(targets: Iterable[str]) -> str:
    line = ", ".join(f"{t}: {CASES[t]}" for t in targets)
    print(f"\nfuzz cases run: {line}")
    return line


# A Python traceback, or a log record of an exception that nothing handled.
UNHANDLED = re.compile(r"Traceback \(most recent call last\)|Unhandled exception|Task exception was never")


def assert_no_unhandled(name: str, text: str) -> None:
    """No traceback or unhandled-exception line in a log."""
    match = UNHANDLED.search(text)
    assert match is None, (
        f"{name}: unhandled exception in the log:\n{text[max(0, match.start() - 500) :][:3000]}"
    )
