"""Pieces of the fault handling without processes: which of the front's dialogs belong to a dead
worker, and which call rows a dead session host leaves open."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.edges.sip.host_pool import HostPool
from gateway.edges.sip.kamailio import FrontOptions, dialogs_of_worker, module_dir, render_config
from gateway.metrics.records import InsertRow, UpdateRow


def _dialog(h_id: int, worker: str | None) -> dict[str, Any]:
    variables = [{"worker": worker}] if worker is not None else []
    return {"h_entry": 1, "h_id": h_id, "call-id": f"c{h_id}", "state": 4, "variables": variables}


def test_dialogs_of_worker_match_the_worker_variable_only() -> None:
    listed = [
        _dialog(1, "sip:127.0.0.1:5071;transport=udp"),
        _dialog(2, "sip:127.0.0.1:5072;transport=udp"),
        _dialog(3, None),  # relayed before the variable existed, or not an INVITE dialog
        _dialog(4, "sip:127.0.0.1:50710;transport=udp"),  # a port that only starts the same
    ]
    assert [d["h_id"] for d in dialogs_of_worker(listed, "127.0.0.1", 5071)] == [1]
    assert dialogs_of_worker(None, "127.0.0.1", 5071) == []  # no dialogs: the RPC result is empty


def test_front_config_keeps_dialogs_and_an_rpc_socket(tmp_path: Path) -> None:
    text = render_config(FrontOptions(), tmp_path / "dispatcher.list", module_dir(), tmp_path / "rpc.sock")
    assert 'loadmodule "dialog.so"' in text and "dlg_manage();" in text
    assert f'"dgram_socket", "{tmp_path / "rpc.sock"}"' in text
    assert text.count("$dlg_var(worker) = $du;") == 2  # first worker and each failover


def test_host_pool_closes_the_calls_a_dead_host_left_open(tmp_path: Path) -> None:
    sent: list[tuple[Any, ...]] = []
    pool = HostPool(1, tmp_path, ["true"], None, on_message=sent.append)
    child = pool.children[0]
    open_row = InsertRow("calls", {"call_id": "a", "edge": "sip", "agent": "x", "started_at": None})
    ended_row = InsertRow("calls", {"call_id": "b", "edge": "sip", "agent": "x", "started_at": None})
    for record in (open_row, ended_row, UpdateRow("calls", ended_row.uid, {"end_reason": "caller_hangup"})):
        child.track(record)
    child.track(UpdateRow("calls", open_row.uid, {"answered_at": None}))  # not an end
    pool._close_lost_calls(child)
    assert sent == [("calls_lost", [open_row.uid], "host_lost"), ("metric", "call_ended", ("host_lost",))]
    assert child.open_calls == {}
