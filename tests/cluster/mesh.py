"""The test cluster's model of Istio's sidecars and their inbound mTLS (docs/test-cluster.md
"The mesh"): which pods are meshed, the mTLS mode of each of their ports under the
PeerAuthentications, and nftables rules in each meshed pod's network namespace that
refuse what Envoy would refuse.

- A pod is meshed when its ``sidecar.istio.io/inject`` label (or, without the label, its
  annotation) is ``"true"``, or when its namespace is labelled ``istio-injection=enabled``
  and that label/annotation is not ``"false"`` (Istio's injection webhook's selectors).
- The mode of a port (:func:`port_modes`), as Istio's documentation of PeerAuthentication
  says: a port-level setting of the workload's policy (``portLevelMtls``, keyed by the
  container port, used only in a policy with a selector), else the workload policy's
  ``mtls.mode`` (the oldest policy with a matching ``selector.matchLabels``), else the
  namespace-wide policy's (no selector; the oldest), else the mesh-wide one's (no
  selector, in the root namespace ``istio-system``; policies with a selector there are
  ignored), else PERMISSIVE. ``UNSET`` (or no ``mtls``) inherits from the next level.
- mTLS, in this model, is a connection from :attr:`Mesh.address`, a dedicated address on
  the bridge: the Services proxy connects from it when the client is a meshed pod, the
  ingress gateway (Envoy) always, and the node agent's probes of a meshed pod come from it
  (Istio rewrites httpGet/tcpSocket probes to its agent). Anything else is plaintext.
- A meshed pod's STRICT ports accept only mTLS: an ``inet`` table in its netns accepts
  the mesh address, loopback and established connections, and resets every other new TCP
  connection to a STRICT port, as Envoy drops a plaintext connection there. Ports in the
  ``traffic.sidecar.istio.io/excludeInboundPorts`` annotation bypass the sidecar. The
  rules are recomputed whenever a PeerAuthentication, a pod or a namespace changes, and
  go with the pod's netns.

Without ``nft`` (:func:`mesh_unavailable`) the model is off: no pod gets rules, every
connection is plaintext and accepted, and the ready line says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tests.cluster.resync import resync_forever
from tests.fakes.kubeapi.fakeapi import FakeKubeAPI
from tests.fakes.kubeapi.storage import Event

log = logging.getLogger(__name__)

ROOT_NAMESPACE = "istio-system"
INJECT = "sidecar.istio.io/inject"
EXCLUDE_INBOUND = "traffic.sidecar.istio.io/excludeInboundPorts"
MODES = ("UNSET", "DISABLE", "PERMISSIVE", "STRICT")
TABLE = "zeroserve_mesh"
PEER_AUTHENTICATIONS = "peerauthentications.security.istio.io"


def mesh_unavailable() -> str | None:
    """Why the mesh model cannot run here (None: it can)."""
    if shutil.which("nft") is None:
        return "nft (nftables) is not installed: the mesh's mTLS model is off"
    return None


# ----- the policy, as pure functions ----------------------------------------------------------


def is_meshed(pod: Mapping[str, Any], namespace: Mapping[str, Any] | None) -> bool:
    """Whether Istio's injector gives ``pod`` a sidecar (module doc)."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    switch = labels.get(INJECT, annotations.get(INJECT))
    if switch is not None and str(switch).lower() == "true":
        return True
    if switch is not None and str(switch).lower() == "false":
        return False
    ns_labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
    return ns_labels.get("istio-injection") == "enabled"


def excluded_ports(pod: Mapping[str, Any]) -> set[int]:
    """The ports of ``traffic.sidecar.istio.io/excludeInboundPorts`` (comma-separated);
    ValueError naming the annotation for anything but port numbers."""
    meta = pod.get("metadata") or {}
    text = str((meta.get("annotations") or {}).get(EXCLUDE_INBOUND) or "")
    out = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if not part.isdigit() or not 0 < int(part) < 65536:
            raise ValueError(
                f"pod {meta.get('namespace')}/{meta.get('name')}: annotation {EXCLUDE_INBOUND}: "
                f"{part!r} is not a port number"
            )
        out.add(int(part))
    return out


def _mode(obj: Mapping[str, Any] | None, where: str) -> str:
    mode = str((obj or {}).get("mode") or "UNSET").upper()
    if mode not in MODES:
        raise ValueError(f"{where}: mode {mode!r} is not one of {', '.join(MODES)}")
    return mode


def _age(pa: Mapping[str, Any]) -> tuple[str, str]:
    meta = pa.get("metadata") or {}
    return (str(meta.get("creationTimestamp") or ""), str(meta.get("name") or ""))


def _selects(pa: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    wanted = ((pa.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return all(labels.get(k) == v for k, v in wanted.items())


def _has_selector(pa: Mapping[str, Any]) -> bool:
    return bool(((pa.get("spec") or {}).get("selector") or {}).get("matchLabels"))


def _name(pa: Mapping[str, Any]) -> str:
    meta = pa.get("metadata") or {}
    return f"PeerAuthentication {meta.get('namespace')}/{meta.get('name')}"


@dataclass(frozen=True)
class PortModes:
    """A meshed pod's effective modes: ``default`` for every port, ``ports`` where a
    port-level setting differs; ``excluded`` bypass the sidecar."""

    default: str
    ports: Mapping[int, str]
    excluded: frozenset[int]

    def mode(self, port: int) -> str:
        if port in self.excluded:
            return "DISABLE"
        return self.ports.get(port, self.default)

    def strict(self, port: int) -> bool:
        return self.mode(port) == "STRICT"


def port_modes(
    pod: Mapping[str, Any], peer_authentications: Iterable[Mapping[str, Any]]
) -> PortModes:
    """The precedence of the module doc, over in-memory objects (ValueError names a
    PeerAuthentication with a bad mode or port)."""
    meta = pod.get("metadata") or {}
    namespace = str(meta.get("namespace") or "default")
    labels = meta.get("labels") or {}
    pas = sorted(peer_authentications, key=_age)
    workload = next(
        (
            p
            for p in pas
            if (p.get("metadata") or {}).get("namespace") == namespace
            and _has_selector(p)
            and _selects(p, labels)
        ),
        None,
    )
    namespace_wide = next(
        (
            p
            for p in pas
            if (p.get("metadata") or {}).get("namespace") == namespace and not _has_selector(p)
        ),
        None,
    )
    mesh_wide = next(
        (
            p
            for p in pas
            if (p.get("metadata") or {}).get("namespace") == ROOT_NAMESPACE and not _has_selector(p)
        ),
        None,
    )
    default = "PERMISSIVE"
    for pa in (mesh_wide, namespace_wide, workload):
        if pa is not None:
            mode = _mode((pa.get("spec") or {}).get("mtls"), f"{_name(pa)}: spec.mtls")
            if mode != "UNSET":
                default = mode
    ports: dict[int, str] = {}
    if workload is not None:
        for key, setting in ((workload.get("spec") or {}).get("portLevelMtls") or {}).items():
            where = f"{_name(workload)}: spec.portLevelMtls[{key}]"
            if not str(key).isdigit():
                raise ValueError(f"{where}: the key must be a container port number")
            mode = _mode(setting, where)
            if mode != "UNSET":
                ports[int(key)] = mode
    return PortModes(default, ports, frozenset(excluded_ports(pod)))


def nft_ruleset(modes: PortModes, mesh_address: str) -> str:
    """The ``nft -f`` text that replaces the pod's table (module doc)."""
    lines = [
        f"table inet {TABLE}",
        f"delete table inet {TABLE}",
        f"table inet {TABLE} {{",
        "  chain input {",
        "    type filter hook input priority 0; policy accept;",
        '    iifname "lo" accept',
        "    ct state established,related accept",
        f"    ip saddr {mesh_address} accept",
    ]
    if modes.default == "STRICT":
        open_ports = sorted(modes.excluded | {p for p, m in modes.ports.items() if m != "STRICT"})
        if open_ports:
            lines.append(f"    tcp dport {{ {', '.join(map(str, open_ports))} }} accept")
        lines.append("    meta l4proto tcp reject with tcp reset")
    else:
        strict = sorted(
            p for p, m in modes.ports.items() if m == "STRICT" and p not in modes.excluded
        )
        if strict:
            lines.append(f"    tcp dport {{ {', '.join(map(str, strict))} }} reject with tcp reset")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


# ----- the running model ----------------------------------------------------------------------


@dataclass
class _Pod:
    namespace: str
    name: str
    ip: str
    netns: str
    rules: str = ""


class Mesh:
    """Keeps every meshed pod's rules in step with the API server (module doc).

    ``address`` is the mesh source address on the bridge; ``unavailable`` says why the
    model is off (then nothing is enforced and :meth:`source_for` gives None)."""

    def __init__(self, api: FakeKubeAPI, *, address: str, bridge: str) -> None:
        self.api = api
        self.address = address
        self.bridge = bridge
        self.unavailable = mesh_unavailable()
        self._started = False
        self._pods: dict[str, _Pod] = {}
        self._by_ip: dict[str, str] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        return self.unavailable is None

    async def start(self) -> None:
        if self.enabled:
            try:  # the kernel's nf_tables answers (read-only)
                await _run("nft", "list", "tables")
            except RuntimeError as e:
                self.unavailable = (
                    f"nftables does not work here ({e}): the mesh's mTLS model is off"
                )
        if not self.enabled:
            log.warning("%s", self.unavailable)
            return
        await _run("ip", "addr", "replace", f"{self.address}/32", "dev", self.bridge)
        self._started = True
        self.api.store.add_listener(self._on_event)
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="mesh")

    async def stop(self) -> None:
        if not self._started:
            return
        self.api.store.remove_listener(self._on_event)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await _run("ip", "addr", "del", f"{self.address}/32", "dev", self.bridge, check=False)

    def _on_event(self, event: Event) -> None:
        if event.key in ("pods", "namespaces", PEER_AUTHENTICATIONS):
            self._wake.set()

    async def _loop(self) -> None:
        await resync_forever(self._wake, self.sync, "mesh")

    # ----- facts for the proxy, the gateway and the node agent --------------------------------

    def _pod_obj(self, uid: str) -> dict[str, Any] | None:
        p = self._pods.get(uid)
        if p is None:
            return None
        obj = self.api.get("pods", p.namespace, p.name)
        return obj if obj is not None and obj["metadata"].get("uid") == uid else None

    def meshed(self, pod: Mapping[str, Any]) -> bool:
        if not self.enabled:
            return False
        ns = (pod.get("metadata") or {}).get("namespace")
        return is_meshed(pod, self.api.get("namespaces", None, str(ns)))

    def source_for(self, client_ip: str) -> str | None:
        """The address the Services proxy connects from for a client: the mesh address
        when the client is a meshed pod (its sidecar sends mTLS), else None."""
        uid = self._by_ip.get(client_ip)
        pod = self._pod_obj(uid) if uid is not None else None
        return self.address if pod is not None and self.meshed(pod) else None

    @property
    def gateway_source(self) -> str | None:
        """The ingress gateway is Envoy: it speaks mTLS to meshed pods."""
        return self.address if self.enabled else None

    # ----- the rules -----------------------------------------------------------------------

    async def pod_started(self, uid: str, namespace: str, name: str, ip: str, netns: str) -> None:
        """A pod's sandbox is up (before its containers start): its rules now."""
        self._pods[uid] = _Pod(namespace, name, ip, netns)
        self._by_ip[ip] = uid
        if self.enabled:
            await self._apply(uid)

    def pod_stopped(self, uid: str) -> None:
        """Its netns, and the rules with it, are going."""
        p = self._pods.pop(uid, None)
        if p is not None and self._by_ip.get(p.ip) == uid:
            del self._by_ip[p.ip]

    def wanted(self, pod: Mapping[str, Any]) -> str:
        """The pod's ruleset ("" when it has no sidecar: no table)."""
        if not self.meshed(pod):
            return ""
        modes = port_modes(pod, self.api.list(PEER_AUTHENTICATIONS))
        return nft_ruleset(modes, self.address)

    async def sync(self) -> None:
        for uid in list(self._pods):
            await self._apply(uid)

    async def _apply(self, uid: str) -> None:
        async with self._lock:
            p = self._pods.get(uid)
            pod = self._pod_obj(uid)
            if p is None or pod is None:
                return
            try:
                rules = self.wanted(pod)
            except ValueError as e:
                log.warning(
                    "mesh: %s; the rules of %s/%s stay as they were", e, p.namespace, p.name
                )
                return
            if rules == p.rules:
                return
            if rules:
                await _run("ip", "netns", "exec", p.netns, "nft", "-f", "-", stdin=rules)
            else:
                await _run(
                    "ip",
                    "netns",
                    "exec",
                    p.netns,
                    "nft",
                    "delete",
                    "table",
                    "inet",
                    TABLE,
                    check=False,
                )
            p.rules = rules


async def _run(*argv: str, stdin: str | None = None, check: bool = True) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    if check and proc.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {err.decode().strip()}")


def mesh_probe(probe: Mapping[str, Any], *, host: str, port: int, source: str) -> Any | None:
    """The node agent's probe of a meshed pod, as Istio's rewrite makes it (an agent in
    the mesh probes the app): the kubelet's httpGet or tcpSocket handler
    (zeroserve/local/probes.py) with its connections from the mesh address; None for other
    kinds (exec runs in the pod anyway; gRPC probes stay the plain ones, from the node's
    address)."""
    from zeroserve.local.probes import http_get, tcp_socket

    def port_of(handler: Mapping[str, Any]) -> int:
        return int(handler.get("port") or 0) or port

    if isinstance(probe.get("httpGet"), Mapping):
        h = probe["httpGet"]
        return http_get(
            str(h.get("host") or host),
            port_of(h),
            str(h.get("path") or "/"),
            scheme=str(h.get("scheme") or "HTTP"),
            headers=h.get("httpHeaders") or (),
            source=source,
        )
    if isinstance(probe.get("tcpSocket"), Mapping):
        t = probe["tcpSocket"]
        return tcp_socket(str(t.get("host") or host), port_of(t), source=source)
    return None
