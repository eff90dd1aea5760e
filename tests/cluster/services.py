"""The test cluster's Services: ClusterIPs, a userspace kube-proxy, and the DNS stand-in.

- Every Service with a selector or endpoints (not ``ExternalName``, not headless) gets a
  ClusterIP from a /24 of the pod CIDR that nothing uses (written to ``spec.clusterIP``
  right after it is created: the real API server allocates it inside the create), added
  as a /32 to the run's bridge, so pods reach it through their default route.
- For each of its TCP ports a listener on ``ClusterIP:port`` forwards each connection to
  a ready endpoint of the Service's EndpointSlices (round robin), as kube-proxy's old
  userspace mode did; the ``kubernetes`` Service in ``default`` forwards to the API
  server's HTTPS listener.
- Names: pods get ``<name>.<namespace>.svc.<cluster domain>``, ``<name>.<namespace>.svc``,
  ``<name>.<namespace>`` and, in their own namespace, ``<name>`` in the ``/etc/hosts``
  the node agent manages (an ``ExternalName`` Service pointing at a cluster Service's
  name gets that Service's IP); and the kubelet's ``KUBERNETES_SERVICE_HOST``/``_PORT``
  variables plus, with ``enableServiceLinks``, ``<NAME>_SERVICE_HOST``/``_PORT`` for
  their namespace's Services.
- :meth:`ServiceProxy.resolve` gives the gateway stand-in and the API server's webhook
  calls a ready endpoint for a Service's DNS name and port.

What differs from Kubernetes: /etc/hosts instead of cluster DNS (no SRV records, no
search-path lookups of other namespaces' short names, a name appears once its Service
exists when the node agent rewrites the file); a userspace proxy instead of iptables or
IPVS (connections come from the node's address, not the client pod's, or from the mesh
address when the client is a meshed pod: tests/cluster/mesh.py); no UDP, no session
affinity, no NodePorts or LoadBalancers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
import subprocess
from collections.abc import Mapping
from typing import Any

from tests.fakes.kubeapi.fakeapi import FakeKubeAPI
from tests.fakes.kubeapi.storage import Event

from .dns import DnsServer, resolv_conf
from .mesh import Mesh
from .resync import resync_forever

log = logging.getLogger(__name__)

API_SERVICE_PORT = 443


class ServiceProxy:
    def __init__(
        self,
        api: FakeKubeAPI,
        *,
        bridge: str,
        subnet: ipaddress.IPv4Network,
        cluster_domain: str = "cluster.local",
        api_endpoint: tuple[str, int],
    ) -> None:
        self.api = api
        self.bridge = bridge
        self.subnet = subnet
        self.cluster_domain = cluster_domain
        self.api_endpoint = api_endpoint
        self._free = [str(h) for h in subnet.hosts()]
        self._ips: dict[tuple[str, str], str] = {}
        self._listeners: dict[tuple[str, str], list[asyncio.Server]] = {}
        self._ports: dict[tuple[str, str], list[tuple[str, int]]] = {}
        self._rr = itertools.count()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.dns: DnsServer | None = None
        self._connections: set[asyncio.Future[None]] = set()
        self.mesh: Mesh | None = None
        """Set by the cluster: a meshed client's connections leave from its address."""

    @property
    def api_ip(self) -> str:
        """The ``kubernetes`` Service's ClusterIP (reserved first, as the real one's .1)."""
        return self._ips[("default", "kubernetes")]

    async def start(self) -> None:
        ip = self._take(("default", "kubernetes"))
        self.api.put(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": "kubernetes",
                    "namespace": "default",
                    "labels": {"component": "apiserver", "provider": "kubernetes"},
                },
                "spec": {
                    "clusterIP": ip,
                    "clusterIPs": [ip],
                    "type": "ClusterIP",
                    "ports": [
                        {
                            "name": "https",
                            "port": API_SERVICE_PORT,
                            "protocol": "TCP",
                            "targetPort": self.api_endpoint[1],
                        }
                    ],
                },
            }
        )
        self.api.put(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": "kubernetes",
                    "namespace": "default",
                    "labels": {"kubernetes.io/service-name": "kubernetes"},
                },
                "addressType": "IPv4",
                "endpoints": [{"addresses": [self.api_endpoint[0]], "conditions": {"ready": True}}],
                "ports": [{"name": "https", "port": self.api_endpoint[1], "protocol": "TCP"}],
            }
        )
        dns_ip = self._take(("kube-system", "kube-dns"))
        self.api.put(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": "kube-dns",
                    "namespace": "kube-system",
                    "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"},
                },
                "spec": {
                    "clusterIP": dns_ip,
                    "clusterIPs": [dns_ip],
                    "type": "ClusterIP",
                    # served by .dns in this process, not by pods: no TCP port for the proxy
                    "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}],
                },
            }
        )
        self.api.store.add_listener(self._on_event)
        await self.sync()
        self.dns = DnsServer(self.dns_lookup, dns_ip)
        await self.dns.start()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="service proxy")

    async def stop(self) -> None:
        self.api.store.remove_listener(self._on_event)
        if self.dns is not None:
            await self.dns.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for key in list(self._listeners):
            await self._close(key)
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        for ip in self._ips.values():
            await _ip("addr", "del", f"{ip}/32", "dev", self.bridge, check=False)

    def _on_event(self, event: Event) -> None:
        if event.key == "services":
            self._wake.set()

    async def _loop(self) -> None:
        await resync_forever(self._wake, self.sync, "service proxy")

    def take_address(self) -> str:
        """An address of the service subnet for another use (the mesh's): no Service's."""
        if not self._free:
            raise RuntimeError(f"no address left in {self.subnet}")
        return self._free.pop(0)

    def _take(self, key: tuple[str, str]) -> str:
        if key not in self._ips:
            if not self._free:
                raise RuntimeError(f"no ClusterIP left in {self.subnet}")
            self._ips[key] = self._free.pop(0)
        return self._ips[key]

    async def sync(self) -> None:
        wanted: dict[tuple[str, str], dict[str, Any]] = {}
        for svc in self.api.list("services"):
            spec = svc.get("spec") or {}
            if spec.get("type") == "ExternalName" or spec.get("clusterIP") == "None":
                continue
            key = (svc["metadata"]["namespace"], svc["metadata"]["name"])
            wanted[key] = svc
        for key in [k for k in self._listeners if k not in wanted]:
            await self._close(key)
            ip = self._ips.pop(key, None)
            if ip is not None:
                await _ip("addr", "del", f"{ip}/32", "dev", self.bridge, check=False)
                self._free.append(ip)
        for key, svc in wanted.items():
            fresh = key not in self._ips
            ip = self._take(key)
            spec = svc["spec"]
            if spec.get("clusterIP") != ip:
                spec["clusterIP"] = ip
                spec["clusterIPs"] = [ip]
                spec.setdefault("type", "ClusterIP")
                self.api.put(svc)
            if fresh or key not in self._listeners:
                await _ip("addr", "replace", f"{ip}/32", "dev", self.bridge)
            ports = [
                (str(p.get("name") or ""), int(p["port"]))
                for p in spec.get("ports") or ()
                if (p.get("protocol") or "TCP") == "TCP"
            ]
            if self._ports.get(key) != ports:
                await self._close(key)
                self._ports[key] = ports
                servers = []
                for name, port in ports:
                    servers.append(
                        await asyncio.start_server(
                            lambda r, w, key=key, name=name: self._connected(r, w, key, name),
                            ip,
                            port,
                            reuse_address=True,
                        )
                    )
                self._listeners[key] = servers

    async def _close(self, key: tuple[str, str]) -> None:
        for server in self._listeners.pop(key, []):
            server.close()
            await server.wait_closed()
        self._ports.pop(key, None)

    # ----- endpoints -------------------------------------------------------------------------

    def endpoints(self, namespace: str, name: str, port_name: str) -> list[tuple[str, int]]:
        """Ready (address, port) of a Service's port, from its EndpointSlices."""
        out = []
        for s in self.api.list(
            "endpointslices", namespace, label_selector=f"kubernetes.io/service-name={name}"
        ):
            ports = [p for p in s.get("ports") or () if (p.get("name") or "") == port_name]
            if not ports or "port" not in ports[0]:
                continue
            for e in s.get("endpoints") or ():
                if (e.get("conditions") or {}).get("ready", True):
                    out += [(a, int(ports[0]["port"])) for a in e.get("addresses") or ()]
        return out

    def resolve(self, host: str, port: int) -> tuple[str, int] | None:
        """A ready endpoint for a Service DNS name (``name.ns[.svc[.domain]]``) and one of
        its ports; None when the name is no Service or nothing is ready."""
        parts = host.rstrip(".").split(".")
        if len(parts) < 2:
            return None
        name, namespace = parts[0], parts[1]
        svc = self.api.get("services", namespace, name)
        if svc is None:
            return None
        spec = svc.get("spec") or {}
        if spec.get("type") == "ExternalName":
            target = str(spec.get("externalName") or "")
            return self.resolve(target, port) if target and target != host else None
        for p in spec.get("ports") or ():
            if int(p["port"]) == port:
                found = self.endpoints(namespace, name, str(p.get("name") or ""))
                return found[next(self._rr) % len(found)] if found else None
        return None

    def _connected(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        key: tuple[str, str],
        port_name: str,
    ) -> None:
        """A connection on a ClusterIP: forwarded by a task of ours, cancelled at stop."""
        task = asyncio.ensure_future(self._forward(reader, writer, key, port_name))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _forward(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        key: tuple[str, str],
        port_name: str,
    ) -> None:
        found = self.endpoints(key[0], key[1], port_name)
        if not found:
            writer.close()
            return
        host, port = found[next(self._rr) % len(found)]
        peer = writer.get_extra_info("peername")
        source = self.mesh.source_for(peer[0]) if self.mesh is not None and peer else None
        try:
            up_reader, up_writer = await asyncio.open_connection(
                host, port, local_addr=(source, 0) if source else None
            )
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        for w in (writer, up_writer):
            w.close()

    # ----- names and variables ---------------------------------------------------------------

    def resolv_conf(self, namespace: str) -> str:
        return resolv_conf(namespace, self._ips[("kube-system", "kube-dns")], self.cluster_domain)

    def dns_lookup(self, name: str) -> list[tuple[str, str]] | None:
        """The cluster DNS records of ``name`` (see .dns); None: no such name."""
        suffix = f".svc.{self.cluster_domain}"
        if name.endswith(suffix):
            parts = name[: -len(suffix)].split(".")
            if len(parts) == 1:
                return [] if self.api.get("namespaces", None, parts[0]) else None
            if len(parts) != 2:
                return None
            svc = self.api.get("services", parts[1], parts[0])
            if svc is None:
                return None
            spec = svc.get("spec") or {}
            if spec.get("type") == "ExternalName":
                return [("CNAME", str(spec.get("externalName") or ""))]
            if spec.get("clusterIP") == "None":
                return [
                    ("A", ip)
                    for ip in sorted(
                        {
                            a
                            for s in self.api.list(
                                "endpointslices",
                                parts[1],
                                label_selector=f"kubernetes.io/service-name={parts[0]}",
                            )
                            for e in s.get("endpoints") or ()
                            if (e.get("conditions") or {}).get("ready", True)
                            for a in e.get("addresses") or ()
                        }
                    )
                ]
            ip = self._ips.get((parts[1], parts[0]))
            return [("A", ip)] if ip else []
        pod_suffix = f".pod.{self.cluster_domain}"
        if name.endswith(pod_suffix):
            head = name[: -len(pod_suffix)].split(".")
            with contextlib.suppress(ValueError):
                return [("A", str(ipaddress.IPv4Address(head[0].replace("-", "."))))]
            return None
        if name in (self.cluster_domain, f"svc.{self.cluster_domain}"):
            return []
        return None

    def hosts(self, namespace: str) -> list[str]:
        """``/etc/hosts`` lines for a pod in ``namespace``."""
        lines = []
        by_name = {}
        for (ns, name), ip in sorted(self._ips.items()):
            names = [f"{name}.{ns}.svc.{self.cluster_domain}", f"{name}.{ns}.svc", f"{name}.{ns}"]
            if ns == namespace:
                names.append(name)
            for n in names[:2]:
                by_name[n] = ip
            lines.append(f"{ip}\t{' '.join(names)}")
        for svc in self.api.list("services"):
            spec = svc.get("spec") or {}
            if spec.get("type") != "ExternalName":
                continue
            ip = by_name.get(str(spec.get("externalName") or "").rstrip("."))
            if ip is not None:
                ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
                lines.append(f"{ip}\t{name}.{ns}.svc.{self.cluster_domain} {name}.{ns}.svc")
        return lines

    def env(self, namespace: str, pod_spec: Mapping[str, Any]) -> dict[str, str]:
        """The kubelet's service variables (``getServiceEnvVarMap``)."""
        out: dict[str, str] = {}
        services = []
        if pod_spec.get("enableServiceLinks", True):
            services = [
                s
                for s in self.api.list("services", namespace)
                if s["metadata"]["name"] != "kubernetes"
            ]
        kubernetes = self.api.get("services", "default", "kubernetes")
        for svc in [*services, *([kubernetes] if kubernetes else [])]:
            ip = (svc.get("spec") or {}).get("clusterIP")
            ports = (svc.get("spec") or {}).get("ports") or ()
            if not ip or ip == "None" or not ports:
                continue
            prefix = svc["metadata"]["name"].upper().replace("-", "_")
            out[f"{prefix}_SERVICE_HOST"] = ip
            out[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
            for p in ports:
                if p.get("name"):
                    key = p["name"].upper().replace("-", "_")
                    out[f"{prefix}_SERVICE_PORT_{key}"] = str(p["port"])
            proto = (ports[0].get("protocol") or "TCP").lower()
            out[f"{prefix}_PORT"] = f"{proto}://{ip}:{ports[0]['port']}"
        return out


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One direction until EOF, then a half-close (both ends close after both are done)."""
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


async def _ip(*args: str, check: bool = True) -> None:
    proc = await asyncio.create_subprocess_exec(
        "ip", *args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, err = await proc.communicate()
    if check and proc.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {err.decode().strip()}")
