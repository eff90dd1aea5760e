"""``zeroserve up``: the whole system on this machine, in the foreground.

In this process: the controller, the local runtime and the control API. As
child processes, like their pods in a cluster: the autoscaler and the
activator (listening on ``--port``, the ingress, and ``--local-port``, the local
gateway), both following the control API, plus every replica the runtime starts.
Only those two ingress listeners follow ``--host``: the control API is on
``--control-host`` (loopback by default) and wants the token written to a file only
this user can read (``zeroserve.local.access``); the autoscaler, the activators'
metrics, the queue-proxies and the apps are on loopback whatever ``--host`` says
(docs/local-mode.md, "Addresses"). Every child is in its own process
group and dies with this process, even on SIGKILL. Ctrl-C (or SIGTERM) stops
in order: the activator drains, the autoscaler stops, every replica drains
(its queue-proxy first), then the control API closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import json
import logging
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from zeroserve.api import ManifestErrors, Object, load
from zeroserve.local.access import os_user
from zeroserve.serving.controller import Controller

from . import access
from .control import ControlAPI, serve, stop
from .page import page_url
from .ports import PortInUse, check_listen_free
from .replica import _die_with_parent, standby_pool
from .runtime import LocalRuntime
from .sandbox import DEFAULT_POD_CIDR, NetworkError, Sandbox, SandboxError
from .state import StateHub

log = logging.getLogger("zeroserve")
LOOPBACK = "127.0.0.1"
"""Where every listener but the ingress ones is, whatever ``--host`` says."""
ACTIVATORS_SYNC_SECONDS = 10.0
"""How long ``up`` waits for its activators to apply the state of the files it applied."""


@dataclass(frozen=True)
class UpOptions:
    files: Sequence[Path] = ()
    host: str = LOOPBACK
    """Address of the ingress listeners (``port`` and ``local_port``) only."""
    port: int = 8080
    """The activator's listener: the ingress of every service."""
    local_port: int = 8081
    """The activators' local gateway: cluster-local hosts (0 = any free port)."""
    control_host: str = LOOPBACK
    """The control API's address (a warning when it is not loopback)."""
    control_port: int = 8090
    domain: str | None = None
    """Default domain instead of ``localhost`` (config-domain can still override)."""
    log_dir: Path | None = None
    activators: int = 1
    """Activator processes sharing the ingress port (the kernel spreads connections)."""
    activation_timeout: float = 120.0
    """How long a request may wait for a replica before a 503 (the activators' setting)."""
    max_starting: int | None = None
    """Replicas of one revision starting at once (default: one per CPU, at least 2)."""
    standby_queue_proxies: int = 2
    """Queue-proxies kept started ahead for the next replicas (zeroserve/local/standby.py)."""
    sandbox: str = "auto"
    """Where replicas run: ``pod``, ``process`` or ``auto`` (``zeroserve.local.sandbox``)."""
    pod_cidr: str = DEFAULT_POD_CIDR
    """The range pod sandboxes take their /24 from."""


class UpError(RuntimeError):
    """``zeroserve up`` could not start; the message says what and why."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def connect_host(host: str) -> str:
    """An address to reach a listener bound to ``host`` from this machine (a wildcard
    address is reached on loopback), bracketed for a URL when it is IPv6."""
    if host in ("", "0.0.0.0"):
        return LOOPBACK
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


KEEP_RUNS = 5
"""Log directories of this many runs are kept under :func:`logs_root` (the newest)."""
_RUN_NAME = re.compile(r"[0-9]{8}-[0-9]{6}-[0-9]+")
_LOCK = ".running"


def logs_root(env: Mapping[str, str] = os.environ) -> Path:
    """Where ``zeroserve up`` keeps its runs' logs by default: the XDG state directory
    (``$XDG_STATE_HOME``, else ``~/.local/state``; XDG Base Directory spec: state is
    "logs, history... that should persist between restarts"), ``zeroserve/logs``."""
    state = env.get("XDG_STATE_HOME", "")
    # The spec: a relative path is invalid and is to be ignored.
    base = Path(state) if os.path.isabs(state) else Path.home() / ".local" / "state"
    return base / "zeroserve" / "logs"


class RunLogs:
    """One run's log directory under ``root``, named by its start time and pid
    (``20261205-165211-4242``), and locked (``flock``) while the run lives, so that
    pruning never removes a running one's, whatever its age. Made by :meth:`start`."""

    def __init__(self, path: Path, lock: int) -> None:
        self.path = path
        self._lock: int | None = lock

    @classmethod
    def start(
        cls, root: Path, *, keep: int = KEEP_RUNS, now: float | None = None, pid: int | None = None
    ) -> RunLogs:
        """Make this run's directory and remove the oldest ones beyond ``keep`` (this one
        included) that no running ``zeroserve up`` holds."""
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
        path = root / f"{stamp}-{os.getpid() if pid is None else pid}"
        try:
            path.mkdir(parents=True, exist_ok=True)
            lock = os.open(path / _LOCK, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            raise UpError(
                f"cannot make the log directory {path}: {e.strerror} (--logs DIR puts them elsewhere)"
            ) from None
        run = cls(path, lock)
        run.prune(keep)
        return run

    def prune(self, keep: int) -> list[Path]:
        """Remove run directories older than the newest ``keep`` unless running; the
        removed ones. Only names of runs are touched, never anything else in ``root``."""
        runs = sorted(
            (p for p in self.path.parent.iterdir() if _RUN_NAME.fullmatch(p.name) and p.is_dir()),
            key=lambda p: (p.name.rsplit("-", 1)[0], int(p.name.rsplit("-", 1)[1])),
        )
        removed = []
        for old in runs[: max(0, len(runs) - keep)]:
            if old == self.path:
                continue
            try:
                fd = os.open(old / _LOCK, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                fd = None  # a directory of a run that died before locking: not running
            except OSError:
                continue
            try:
                if fd is not None:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue  # running
                shutil.rmtree(old, ignore_errors=True)
                removed.append(old)
            finally:
                if fd is not None:
                    os.close(fd)
        return removed

    def close(self) -> None:
        """The run is over: its directory may be pruned by a later one, and is removed
        now if nothing was logged (a start refused before any process ran)."""
        if self._lock is None:
            return
        with contextlib.suppress(OSError):
            if [p.name for p in self.path.iterdir()] == [_LOCK]:
                (self.path / _LOCK).unlink()
                self.path.rmdir()
        os.close(self._lock)
        self._lock = None


def check_ingress_ports(o: UpOptions) -> None:
    """Refuse to start when ``--port`` or ``--local-port`` is already served (by another
    ``zeroserve up`` or anything else): checked once, before the first activator binds,
    since the activators' SO_REUSEPORT would otherwise join whoever holds it
    (:func:`zeroserve.local.ports.check_listen_free`). Restarted activators are not
    checked: the port is their own group's then."""
    for flag, port in (("--port", o.port), ("--local-port", o.local_port)):
        address = f"[{o.host}]:{port}" if ":" in o.host else f"{o.host}:{port}"
        try:
            check_listen_free(o.host, port)
        except PortInUse:
            raise UpError(
                f"{flag} {port}: {address} is already in use (another zeroserve up?)"
            ) from None
        except OSError as e:
            raise UpError(f"{flag} {port}: cannot listen on {address}: {e.strerror}") from None


class Child:
    """A component process (autoscaler, activator) with the JSON line it printed."""

    def __init__(
        self,
        name: str,
        proc: asyncio.subprocess.Process,
        info: dict[str, object],
        log_file: Path | None = None,
    ) -> None:
        self.name = name
        self.proc = proc
        self.info = info
        self._pump: asyncio.Task[None] | None = None
        if log_file is not None and proc.stdout is not None:
            self._pump = asyncio.get_running_loop().create_task(
                _append_lines(proc.stdout, log_file), name=f"stdout {name}"
            )

    @classmethod
    async def spawn(
        cls,
        name: str,
        argv: list[str],
        log_file: Path,
        timeout: float = 60.0,
        env: dict[str, str] | None = None,
    ) -> Child:
        with log_file.open("ab") as err:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout)
        except TimeoutError:
            line = b""
        if not line:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            tail = " | ".join(log_file.read_text(errors="replace").strip().splitlines()[-3:])
            raise UpError(f"the {name} did not start: {tail or 'no output'} (log: {log_file})")
        return cls(name, proc, json.loads(line), log_file)

    async def stop(self, grace: float) -> int | None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()
        if self._pump is not None:
            # the process is gone: its stdout ends; what it wrote last is kept
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._pump), 2.0)
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
            self._pump = None
        return self.proc.returncode


async def _append_lines(stream: asyncio.StreamReader, path: Path) -> None:
    """A component's stdout after its first line (the activator's request log,
    docs/observability.md), appended to its log file as it comes."""
    with path.open("ab") as out:
        while chunk := await stream.read(65536):  # not by line: a line may be long
            out.write(chunk)
            out.flush()


class Up:
    """The running system; ``start`` then ``stop``."""

    def __init__(self, options: UpOptions) -> None:
        if options.activators < 1:
            raise UpError("--activators must be at least 1")
        if options.local_port != 0 and options.local_port == options.port:
            # with SO_REUSEPORT both listeners would bind it and split its connections
            raise UpError(f"--local-port must differ from --port (both {options.port})")
        if options.max_starting is not None and options.max_starting < 1:
            raise UpError(f"--max-starting must be at least 1, not {options.max_starting}")
        if options.standby_queue_proxies < 0:
            raise UpError(
                f"--standby-queue-proxies must be at least 0, not {options.standby_queue_proxies}"
            )
        self.options = options
        self.run_logs: RunLogs | None = None
        if options.log_dir is not None:
            self.log_dir = options.log_dir
            try:
                self.log_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise UpError(f"--logs {self.log_dir}: {e.strerror}") from None
        else:
            self.run_logs = RunLogs.start(logs_root())
            self.log_dir = self.run_logs.path
        self.controller = Controller(time.time(), default_domain=options.domain)
        self.hub = StateHub(self.controller)
        self.runtime = LocalRuntime(
            on_change=self.hub.runtime_changed,
            log_dir=self.log_dir,
            host=LOOPBACK,  # queue-proxies and apps: only the activators reach them
            working_dir=os.getcwd(),
            max_starting=options.max_starting,
            lookup=self.controller.lookup,
            standby=standby_pool(options.standby_queue_proxies, self.log_dir),
        )
        self.token = access.new_token()
        self.token_file: Path | None = None
        self.api = ControlAPI(self.hub, self.controller, self.runtime, token=self.token)
        self.children: dict[str, Child] = {}
        self._supervisors: list[asyncio.Task[None]] = []
        self._stopping = False
        self.control_url = ""
        self.ingress_port = 0
        self.local_port: int | None = None
        """The local gateway's port, as the first activator reports it."""
        self._runner: web.AppRunner | None = None
        self.sandbox: Sandbox | None = None

    async def start(self) -> list[str]:
        """Start everything and apply the files; returns the apply lines."""
        o = self.options
        objects = []
        for f in o.files:  # parse before starting anything: a bad file stops nothing
            try:
                text = f.read_text()
            except OSError as e:
                raise UpError(f"cannot read {f}: {e.strerror}") from None
            objects.append(load(text, str(f)))
        check_ingress_ports(o)
        if not is_loopback(o.control_host):
            print(
                f"zeroserve up: warning: the control API listens on {o.control_host} "
                "(--control-host), not loopback: anyone who can reach it and has the token "
                "can run commands as you",
                file=sys.stderr,
                flush=True,
            )
        try:
            self.sandbox = await Sandbox.start(
                o.sandbox,
                pod_cidr=o.pod_cidr,
                # made ahead as the standby queue-proxies, for the same cold starts
                spares=o.standby_queue_proxies,
            )
        except (SandboxError, NetworkError) as e:
            raise UpError(str(e)) from None
        for line in self.sandbox.cleaned:
            print(f"zeroserve up: removed what a killed earlier run left: {line}", flush=True)
        print(f"zeroserve up: {self.sandbox.describe()}", flush=True)
        self.runtime.sandbox = self.sandbox
        if self.sandbox.network is not None:
            # its spare pod networks are made again once no replica is starting
            self.sandbox.network.starts = self.runtime.starts
        if self.runtime.standby is not None:
            self.runtime.standby.start()
        self.controller.sandbox = self.sandbox.mode == "pod"
        self.hub.attach(self.runtime)
        try:
            self._runner, port = await serve(self.api, o.control_host, o.control_port)
        except OSError as e:
            raise UpError(
                f"cannot listen on {o.control_host}:{o.control_port} "
                f"(--control-host/--control-port): {e.strerror}"
            ) from None
        self.control_url = f"http://{connect_host(o.control_host)}:{port}"
        try:
            self.token_file = access.write_token_file(port, self.control_url, self.token)
        except access.TokenFileError as e:
            raise UpError(str(e)) from None
        self.api.token_file = str(self.token_file)
        self.autoscaler_port = 0
        self.children["autoscaler"] = await self.spawn_autoscaler()
        port, local_port = o.port, o.local_port
        for i in range(o.activators):
            # The first one picks the ports (if 0); the others share them.
            self.children[f"activator-{i}"] = await self.spawn_activator(i, port, local_port)
            port = self.ingress_port
            local_port = self.local_port if self.local_port is not None else local_port
        for name in list(self.children):
            task = asyncio.get_running_loop().create_task(
                self._supervise(name), name=f"supervise {name}"
            )
            self._supervisors.append(task)
        return await self._apply_files(objects)

    def child_env(self) -> dict[str, str]:
        """The environment of the autoscaler and the activators: this one and the token
        (replicas get their own, without it: runtime.py)."""
        return {**os.environ, access.TOKEN_ENV: self.token}

    async def spawn_autoscaler(self) -> Child:
        child = await Child.spawn(
            "autoscaler",
            [
                sys.executable,
                "-m",
                "autoscaler",
                "--control",
                self.control_url,
                "--host",
                LOOPBACK,  # the stats websocket and metrics: only the activators use them
                "--port",
                str(self.autoscaler_port),
                "--metrics-port",
                "0",
            ],
            self.log_dir / "autoscaler.log",
            env=self.child_env(),
        )
        # Restarted on the same port: the activators' links reconnect to it.
        self.autoscaler_port = int(child.info["port"])  # type: ignore[call-overload]
        return child

    async def spawn_activator(self, index: int, port: int, local_port: int) -> Child:
        """Start activator ``index`` on the ingress ports (also to replace one)."""
        o = self.options
        # Only the ingress listeners follow --host; the metrics port stays on loopback.
        metrics_host = [] if o.host == LOOPBACK else ["--metrics-host", LOOPBACK]
        child = await Child.spawn(
            f"activator-{index}",
            [
                sys.executable,
                "-m",
                "activator",
                "--control",
                self.control_url,
                "--host",
                o.host,
                "--port",
                str(port),
                "--local-port",
                str(local_port),
                "--reuse-port",
                "--ingress",
                "--metrics-port",
                "0",
                *metrics_host,
                "--autoscaler-url",
                f"ws://{LOOPBACK}:{self.autoscaler_port}/",
                "--drain-seconds",
                "0",
                "--pod-name",
                f"activator-{index}",
                "--activation-timeout",
                f"{o.activation_timeout:g}",
            ],
            self.log_dir / f"activator-{index}.log",
            env=self.child_env(),
        )
        self.ingress_port = int(child.info["port"])  # type: ignore[call-overload]
        if child.info.get("local_port") is not None:
            self.local_port = int(child.info["local_port"])  # type: ignore[call-overload]
        return child

    async def _supervise(self, name: str) -> None:
        """Restart a component that exits on its own, as Kubernetes restarts a pod."""
        backoff = 0.5
        while not self._stopping:
            child = self.children[name]
            code = await child.proc.wait()
            if self._stopping:
                return
            log.warning("the %s exited with code %s; restarting it in %.1fs", name, code, backoff)
            await asyncio.sleep(backoff)
            backoff = min(10.0, backoff * 2)
            try:
                if name == "autoscaler":
                    self.children[name] = await self.spawn_autoscaler()
                else:
                    self.children[name] = await self.spawn_activator(
                        int(name.rsplit("-", 1)[1]),
                        self.ingress_port,
                        self.local_port if self.local_port is not None else self.options.local_port,
                    )
                backoff = 0.5
            except UpError as e:
                log.error("restarting the %s failed: %s", name, e)

    async def _apply_files(self, objects: list[list[Object]]) -> list[str]:
        lines = []
        for objs in objects:
            lines += self.controller.apply(objs, now=time.time(), user=os_user())
        self.hub.controller_changed()
        # "up" means routed: a request sent the moment the line is printed must find its
        # route at the activators, not race their first poll of the new state.
        activators = [name for name in self.children if name.startswith("activator-")]
        if not await self.hub.wait_applied(activators, ACTIVATORS_SYNC_SECONDS):
            log.warning(
                "the activators have not applied the state within %ss", ACTIVATORS_SYNC_SECONDS
            )
        return lines

    def urls(self) -> list[tuple[str, str]]:
        """(service, url) of every service."""
        out = []
        for svc in self.controller.get("ksvc"):
            url = svc.get("status", {}).get("url")
            if url:
                out.append((svc["metadata"]["name"], url))
        return out

    async def stop(self) -> None:
        self._stopping = True
        for task in self._supervisors:
            task.cancel()
        await asyncio.gather(*self._supervisors, return_exceptions=True)
        for child in reversed(list(self.children.values())):
            code = await child.stop(grace=30)
            if code not in (0, None):
                log.warning("the %s exited with code %s (log: %s)", child.name, code, self.log_dir)
        await self.runtime.close()
        if self.sandbox is not None:
            await self.sandbox.close()
        self.hub.close()
        if self._runner is not None:
            await stop(self._runner)
        if self.token_file is not None:
            access.remove_token_file(self.token_file, self.token)
        if self.run_logs is not None:
            self.run_logs.close()


def is_cluster_local(url: str) -> bool:
    """A cluster-local URL (``http://NAME.NS.svc.cluster.local``): the local gateway's."""
    name = url.split("://", 1)[-1].split("/", 1)[0]
    return ".svc." in name


def curl_lines(url: str, port: int, host: str, local_port: int | None = None) -> list[str]:
    """How to call a service: by name (curl resolves *.localhost) and by Host header; a
    cluster-local one through the local gateway (``local_port``)."""
    name = url.split("://", 1)[-1]
    host = connect_host(host)
    if is_cluster_local(url):
        if local_port is None:
            return []
        return [f"curl -H 'Host: {name}' http://{host}:{local_port}"]
    lines = []
    if name.endswith(".localhost"):
        lines.append(f"curl http://{name}:{port}")
    lines.append(f"curl -H 'Host: {name}' http://{host}:{port}")
    return lines


async def run_up(options: UpOptions) -> int:
    try:
        up = Up(options)
    except UpError as e:
        print(f"zeroserve up: {e}", file=sys.stderr)
        return 1
    loop = asyncio.get_running_loop()
    stop_event = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_event.set)
    try:
        try:
            lines = await up.start()
        except ManifestErrors as e:
            for err in e.errors:
                print(err, file=sys.stderr)
            return 1
        except UpError as e:
            print(f"zeroserve up: {e}", file=sys.stderr)
            return 1
        for line in lines:
            print(line)
        gateway = (
            f" (local gateway http://{connect_host(options.host)}:{up.local_port})"
            if up.local_port is not None
            else ""
        )
        # The first three fields keep their order and form: tools read them.
        print(
            f"zeroserve is up: ingress http://{connect_host(options.host)}:{up.ingress_port}, "
            f"control API {up.control_url}, logs in {up.log_dir}{gateway}",
            flush=True,
        )
        print(f"control API token in {up.token_file} (the zeroserve client reads it)", flush=True)
        print(f"live page: {page_url(up.control_url, up.api.page.page_token)}", flush=True)
        await _print_urls_when_ready(up, stop_event)
        print("Ctrl-C to stop.", flush=True)
        await stop_event.wait()
        print("stopping: the activator drains, then every replica", flush=True)
        return 0
    finally:
        await up.stop()


async def _print_urls_when_ready(up: Up, stop_event: asyncio.Event, within: float = 120.0) -> None:
    """Print each service's URL and curl line once it is Ready (or why not)."""
    pending = {name for name, _ in up.urls()} or set()
    deadline = time.monotonic() + within
    printed: set[str] = set()
    while pending - printed and time.monotonic() < deadline and not stop_event.is_set():
        for svc in up.controller.get("ksvc"):
            name = svc["metadata"]["name"]
            if name in printed:
                continue
            conds = {c["type"]: c for c in svc.get("status", {}).get("conditions", [])}
            ready = conds.get("Ready", {})
            url = svc.get("status", {}).get("url")
            if ready.get("status") == "True" and url:
                print(f"service {name} is ready: {url}")
                for line in curl_lines(url, up.ingress_port, up.options.host, up.local_port):
                    print(f"  {line}")
                printed.add(name)
            elif ready.get("status") == "False":
                print(
                    f"service {name} is not ready: {ready.get('reason', '')}: {ready.get('message', '')}"
                )
                printed.add(name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop_event.wait(), 0.1)
    sys.stdout.flush()
