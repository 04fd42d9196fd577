"""pjsua2 subclasses for the worker: the endpoint (INVITEs pjsua2 refused itself), the account that
receives calls and the call object.

They only forward callbacks to the `Worker` (worker.py), which owns all state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pjsua2 as pj

if TYPE_CHECKING:
    from gateway.edges.sip.worker import Worker


class WorkerEndpoint(pj.Endpoint):
    def __init__(self, worker: Worker) -> None:
        super().__init__()
        self._worker = worker

    def onRejectedIncomingCall(self, prm: Any) -> None:
        self._worker.on_rejected(prm)


class WorkerAccount(pj.Account):
    def __init__(self, worker: Worker) -> None:
        super().__init__()
        self._worker = worker

    def onIncomingCall(self, prm: Any) -> None:
        self._worker.on_incoming_call(self, prm)


class WorkerCall(pj.Call):
    def __init__(self, worker: Worker, account: pj.Account, call_id: int) -> None:
        super().__init__(account, call_id)
        self._worker = worker
        self.slot = 0

    def onCallState(self, prm: Any) -> None:
        self._worker.on_call_state(self)

    def onCallMediaState(self, prm: Any) -> None:
        self._worker.on_media_state(self)

    def onDtmfDigit(self, prm: Any) -> None:
        self._worker.on_dtmf(self, str(prm.digit), int(prm.method))
