"""The Kamailio front: render its configuration from `kamailio.cfg.tmpl` (package data) and run it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from gateway.edges.sip.procs import die_with_parent

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE = Path(str(files("gateway.edges.sip") / "kamailio.cfg.tmpl"))
# The dialog module's states: 1 unconfirmed (no reply yet), 2 early (ringing), 3 confirmed, 4
# confirmed and ACKed, 5 deleted.
DIALOG_EARLY, DIALOG_CONFIRMED = 2, 3
RPC_SOCKET = "kamailio_rpc.sock"  # in the run directory: jsonrpcs over a Unix datagram socket
MODULE_DIRS = ("/usr/lib/x86_64-linux-gnu/kamailio/modules", "/usr/lib/kamailio/modules")


@dataclass
class FrontOptions:
    host: str = "127.0.0.1"
    port: int = 5060
    tcp: bool = True
    retry_after: int = 5
    children: int = 2
    allow: Sequence[str] = ()
    invites_per_second: float = 0.0  # 0: no flood protection
    burst: int = 10
    auth_user: str = ""
    auth_password: str = field(default="", repr=False)  # only in the 0600 generated config
    auth_realm: str = ""
    tls_port: int = 0  # 0: no TLS listener
    tls_certificate: str = ""  # absolute PEM paths
    tls_private_key: str = ""
    ping_interval: int = 2
    fr_timer_ms: int = 2000
    debug: int = 1
    template: Path = DEFAULT_TEMPLATE
    extra_defines: list[str] = field(default_factory=list)


def module_dir() -> str:
    for d in MODULE_DIRS:
        if Path(d, "dispatcher.so").exists():
            return d
    raise FileNotFoundError("Kamailio modules not found; install the `kamailio` package")


def dispatcher_list(workers: Sequence[tuple[str, int]]) -> str:
    """Dispatcher set 1: one line per worker."""
    return "".join(f"1 sip:{host}:{port};transport=udp\n" for host, port in workers)


def _quoted(value: str) -> str:
    """A value safe inside a double-quoted Kamailio string."""
    if any(c in value for c in '"\\\r\n$'):
        raise ValueError(
            "values in the front's config (credentials, TLS paths) may not contain quotes, "
            "backslashes, '$' or line breaks"
        )
    return value


def render_config(
    opts: FrontOptions, dispatcher_file: Path, modules: str, rpc_socket: Path | None = None
) -> str:
    defines = list(opts.extra_defines)
    if opts.tcp:
        defines.append("WITH_TCP")
    if opts.allow:
        defines.append("WITH_ALLOW")
    if opts.invites_per_second > 0:
        defines.append("WITH_PIKE")
    if opts.auth_user:
        defines.append("WITH_AUTH")
    if opts.tls_port:
        if not (opts.tls_certificate and opts.tls_private_key):
            raise ValueError("TLS needs a certificate and a private key")
        defines.append("WITH_TLS")
    # pike counts requests per sampling unit: a burst over `burst / rate` seconds.
    unit = max(1, round(opts.burst / opts.invites_per_second)) if opts.invites_per_second > 0 else 2
    density = max(1, round(opts.invites_per_second * unit)) if opts.invites_per_second > 0 else 1
    values = {
        "DEFINES": "\n".join(f"#!define {d}" for d in defines),
        "DEBUG": str(opts.debug),
        "CHILDREN": str(opts.children),
        "HOST": opts.host,
        "PORT": str(opts.port),
        "MODULE_DIR": modules,
        "DISPATCHER_LIST": str(dispatcher_file),
        "RPC_SOCKET": str(rpc_socket or dispatcher_file.parent / RPC_SOCKET),
        "RETRY_AFTER": str(opts.retry_after),
        "PING_INTERVAL": str(opts.ping_interval),
        "FR_TIMER_MS": str(opts.fr_timer_ms),
        "ALLOW": ",".join(opts.allow),
        "PIKE_UNIT": str(unit),
        "PIKE_DENSITY": str(density),
        "AUTH_USER": _quoted(opts.auth_user),
        "AUTH_PASSWORD": _quoted(opts.auth_password),
        "AUTH_REALM": _quoted(opts.auth_realm or opts.host),
        "TLS_PORT": str(opts.tls_port),
        "TLS_CERTIFICATE": _quoted(opts.tls_certificate),
        "TLS_PRIVATE_KEY": _quoted(opts.tls_private_key),
    }
    text = opts.template.read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text


class RpcError(RuntimeError):
    """The front answered a JSON-RPC call with an error."""


def rpc_call(path: Path, method: str, params: list[Any], timeout: float = 2.0) -> Any:
    """Blocking JSON-RPC over Kamailio's jsonrpcs datagram socket: the reply comes back to a
    socket of our own, bound next to the front's."""
    request = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": 1}).encode()
    reply_path = path.parent / f"rpc-{os.getpid()}-{uuid.uuid4().hex[:8]}.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(reply_path))
        try:
            sock.settimeout(timeout)
            sock.sendto(request, str(path))
            data = sock.recv(1 << 20)
        finally:
            reply_path.unlink(missing_ok=True)
    reply = json.loads(data)
    if "error" in reply:
        raise RpcError(f"{method}: {reply['error']}")
    return reply.get("result")


def dialogs_of_worker(listed: Any, host: str, port: int) -> list[dict[str, Any]]:
    """The dialogs of `dlg.list`'s result whose `worker` variable (set by the config when it
    relays an INVITE) names host:port."""
    target = f"sip:{host}:{port}"
    out = []
    for dlg in listed if isinstance(listed, list) else []:
        variables = dlg.get("variables") or []
        worker = next((str(v["worker"]) for v in variables if isinstance(v, dict) and "worker" in v), "")
        if worker.split(";")[0] == target:
            out.append(dlg)
    return out


class KamailioFront:
    """Runs `kamailio` in the foreground in its own process group, with a generated config."""

    def __init__(self, opts: FrontOptions, run_dir: Path, workers: Sequence[tuple[str, int]]) -> None:
        self.opts = opts
        self.run_dir = run_dir
        self.workers = list(workers)
        self.proc: asyncio.subprocess.Process | None = None

    def write_config(self) -> Path:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        ds = self.run_dir / "dispatcher.list"
        ds.write_text(dispatcher_list(self.workers))
        cfg = self.run_dir / "kamailio.cfg"
        cfg.touch(mode=0o600)
        cfg.chmod(0o600)
        cfg.write_text(render_config(self.opts, ds, module_dir(), self.run_dir / RPC_SOCKET))
        return cfg

    async def rpc(self, method: str, *params: Any, timeout: float = 2.0) -> Any:
        """One JSON-RPC call to the running front (jsonrpcs, Unix datagram socket); its `result`."""
        return await asyncio.to_thread(rpc_call, self.run_dir / RPC_SOCKET, method, list(params), timeout)

    async def end_dialogs_of(self, port: int) -> list[str]:
        """End every dialog the front routed to the worker on SIP port `port` (a worker that died
        cannot): BYE both sides of an answered call, 503 + Retry-After to a caller still hearing
        it ring (the INVITE would otherwise wait for `fr_inv_timer`); the Call-IDs ended."""
        host = next((h for h, p in self.workers if p == port), "127.0.0.1")
        try:
            listed = await self.rpc("dlg.list")
        except (OSError, RpcError) as exc:
            log.error("cannot list the front's dialogs to end the calls of %s:%d: %s", host, port, exc)
            return []
        ended = []
        for dlg in dialogs_of_worker(listed, host, port):
            state = int(dlg.get("state", 0))
            if state < DIALOG_EARLY:  # no reply yet: the front fails over when its timer fires
                continue
            try:
                if state < DIALOG_CONFIRMED:
                    # Still ringing: no BYE yet, a final answer to the INVITE (the caller may retry).
                    retry = f"Retry-After: {self.opts.retry_after}\r\n"
                    call_id, cseq = str(dlg["call-id"]), str(dlg["caller"]["cseq"])
                    tag = f"lost{int(dlg['h_id'])}"
                    await self.rpc("tm.reply_callid", 503, "Worker Lost", call_id, cseq, tag, retry, "")
                else:
                    await self.rpc("dlg.end_dlg", int(dlg["h_entry"]), int(dlg["h_id"]))
            except (OSError, RpcError) as exc:
                log.error("ending call %s of %s:%d failed: %s", dlg.get("call-id"), host, port, exc)
                continue
            ended.append(str(dlg.get("call-id", "")))
        return ended

    async def start(self) -> None:
        binary = shutil.which("kamailio") or "/usr/sbin/kamailio"
        cfg = self.write_config()
        check = await asyncio.create_subprocess_exec(
            binary, "-c", "-f", str(cfg), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await check.communicate()
        if check.returncode != 0:
            raise RuntimeError(f"kamailio rejected {cfg}:\n{out.decode(errors='replace')[-2000:]}")
        log_file = open(self.run_dir / "kamailio.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = await asyncio.create_subprocess_exec(
            binary,
            "-DD",
            "-E",
            "-f",
            str(cfg),
            "-Y",
            str(self.run_dir),
            "-P",
            str(self.run_dir / "kamailio.pid"),
            "-m",
            "32",
            "-M",
            "8",
            stdout=log_file,
            stderr=log_file,
            preexec_fn=die_with_parent,
        )
        log_file.close()
        log.info(
            "kamailio front on %s:%d%s (pid %d), log %s",
            self.opts.host,
            self.opts.port,
            f", TLS on {self.opts.tls_port}" if self.opts.tls_port else "",
            self.proc.pid,
            self.run_dir / "kamailio.log",
        )

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop the whole process group (Kamailio's children too, even if the main process died)."""
        proc = self.proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
