"""Each carrier's documented message sequence over a real WebSocket, with a recorded call's audio:
the live decisions and database rows equal what `gateway replay` gives on the call's recording."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from carrier_simulator import WIRE, CarrierSimulator
from session_fixtures import backchannel_then_barge_in, dental_agent_yaml
from sqlalchemy import select

from gateway.config.schema import DatabaseConfig, GatewayConfig, HttpConfig
from gateway.edges import mediastream
from gateway.edges.mediastream import MediaStreamEdge, MediaStreamSettings
from gateway.metrics.database import create_db_engine
from gateway.metrics.replay_sink import ReplaySink
from gateway.metrics.tables import Call, InterruptionEvent
from gateway.replay import Replayer
from gateway.runtime import GatewayRuntime


class Gateway:
    def __init__(self, runtime: GatewayRuntime, port: int, edge: MediaStreamEdge) -> None:
        self.runtime, self.port, self.edge = runtime, port, edge

    def url(self, path: str = "/media") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"


StartGateway = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def start_gateway(tmp_path: Path) -> AsyncIterator[StartGateway]:
    services: list = []

    async def start(
        rate: int = 8000, db_url: str | None = None, settings: MediaStreamSettings | None = None
    ) -> Gateway:
        agent = tmp_path / f"agent{rate}.yaml"
        agent.write_text(dental_agent_yaml("carrier-test", "tts: {provider: espeak-ng}\n", vad_rate=rate))
        config = GatewayConfig(
            default_agent=str(agent),
            database=DatabaseConfig(url=db_url or "sqlite://", spool_dir=str(tmp_path / "spool")),
        ).model_copy(update={"http": HttpConfig.model_construct(host="127.0.0.1", port=0)})
        runtime = GatewayRuntime(config, db_url)
        if db_url is not None:
            metrics = runtime.metrics_service()
            await metrics.start()
            services.append(metrics)
        http = runtime.http_service()
        edge = mediastream.install(http.app, runtime.runner, settings or MediaStreamSettings())
        await http.start()
        services.append(http)
        return Gateway(runtime, http.port, edge)

    yield start
    for service in reversed(services):
        await service.stop()


def verdicts(events: list) -> list[tuple]:
    return [
        (e.type, round(e.onset, 2), e.mode, None if e.probability is None else round(e.probability, 3))
        for e in events
        if e.type in ("interruption", "backchannel")
    ]


def rows(url: str, edge: str) -> list[tuple]:
    engine = create_db_engine(url)
    with engine.connect() as conn:
        (call_id,) = conn.execute(select(Call.id).where(Call.edge == edge)).scalars().all()
        found = conn.execute(
            select(
                InterruptionEvent.kind,
                InterruptionEvent.onset_s,
                InterruptionEvent.mode,
                InterruptionEvent.probability,
                InterruptionEvent.detection_delay_ms,
            )
            .where(InterruptionEvent.call_id == call_id)
            .order_by(InterruptionEvent.offset_s)
        ).all()
    engine.dispose()
    return [
        (
            k,
            None if on is None else round(on, 2),
            m,
            None if p is None else round(p, 3),
            None if d is None else round(d),
        )
        for k, on, m, p, d in found
    ]


@pytest.mark.slow
@pytest.mark.parametrize("dialect", ["twilio", "telnyx", "plivo", "exotel", "vonage"])
async def test_carrier_call_matches_replay_of_its_recording(
    dialect: str, start_gateway: StartGateway, migrated_url: str
) -> None:
    rate = WIRE[dialect].rate
    gateway = await start_gateway(rate, migrated_url)
    result = await CarrierSimulator(
        gateway.url(f"/media/{dialect}"), dialect, backchannel_then_barge_in(rate), speed=4.0
    ).run()
    (closed,) = await gateway.edge.wait_closed(1)
    assert closed.reason == "call ended" and closed.call_id.startswith(f"{dialect}:")
    (call,) = gateway.edge.finished
    live = call.observer.events
    # the agent spoke, the caller's "mm-hmm" was a backchannel and the barge-in stopped it,
    # with the carrier told to clear its buffer
    assert [v[0] for v in verdicts(live)] == ["backchannel", "interruption"]
    assert result.clears >= 1 and result.marks_sent_back > 0
    assert any(e.type == "stop_playout" for e in live)

    # the same decisions from `gateway replay` on the stereo recording the carrier made
    stereo = result.stereo()
    agent = gateway.runtime.runner.agent(str(gateway.runtime.config.default_agent))
    options = agent.config.turn_handling.to_options()
    replayed = Replayer(options).replay_pcm(stereo[:, 0], stereo[:, 1], rate, f"{dialect}.wav")
    # (frames the session could not keep up with are not in the live decisions: say so if it fails)
    assert verdicts(live) == verdicts(replayed.events), f"{call.transport.dropped} caller frames dropped"

    # ... and the same database rows (the live call's come through the metrics writer)
    await gateway.runtime.writer.stop()  # type: ignore[union-attr]
    sink = ReplaySink(migrated_url, "carrier-test")
    sink.record(replayed, sample_rate=rate)
    sink.close()
    live_rows = rows(migrated_url, "mediastream")
    assert live_rows and live_rows == rows(migrated_url, "replay")
