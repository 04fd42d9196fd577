"""The package's import layers hold (the contracts in pyproject.toml, checked by import-linter).

audio < turns < config < calls < backends | edges | replay < agents | metrics < the process
(runtime, HTTP app, commands); no edge imports agents or metrics, metrics import no edge.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_imports_flow_one_way() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "2 kept, 0 broken" in result.stdout
