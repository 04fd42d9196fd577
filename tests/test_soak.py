"""A small soak in CI: 200 short SIP calls through the front, and the main process keeps no memory
per call (RSS after the last batch within 10 % of RSS after the warm-up batch). The full soak is
`python bench/bench_soak.py` (1,000 calls)."""

from __future__ import annotations

from pathlib import Path

from sip_fixtures import needs_sipp_and_kamailio

from bench.bench_soak import ALLOWED_GROWTH, soak

pytestmark = needs_sipp_and_kamailio()


def test_rss_stays_flat_over_200_calls(tmp_path: Path) -> None:
    result = soak(tmp_path, calls=200, concurrency=8, seconds=1.0, batches=4)
    assert result.calls == [50, 100, 150, 200]
    assert result.failed <= 4, result  # calls really happened (a few may meet a full worker)
    assert result.growth <= ALLOWED_GROWTH, (result, f"{result.kb_per_call:.0f} kB per call kept")
