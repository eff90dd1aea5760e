"""The test cluster (docs/test-cluster.md): one process, one event loop, everything a
Kubernetes install of zeroserve needs below it.

- the fake API server (tests/fakes/kubeapi) on 127.0.0.1 for kubectl and helm, and on
  ``<node IP>:6443`` over HTTPS for the pods (the ``kubernetes`` Service forwards there);
- the controllers of :mod:`.controllers` (Deployments, ReplicaSets, EndpointSlices, ...);
- the node agent of :mod:`.node`, running every pod in a pod sandbox (root on Linux);
- the Services of :mod:`.services` (ClusterIPs, a userspace proxy, /etc/hosts names);
- the gateway stand-in of :mod:`.istio` (Istio's ingress gateway: the public and the
  cluster-local listener on 127.0.0.1);
- the mesh model of :mod:`.mesh` (Istio's sidecars' inbound mTLS, with nftables).
"""

from __future__ import annotations

import json
import logging
import secrets
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from tests.fakes.kubeapi.admission import Admission
from tests.fakes.kubeapi.auth import AUTHENTICATED, MASTERS, Auth, User, bootstrap_policy
from tests.fakes.kubeapi.fakeapi import DEFAULT_NAMESPACES, FakeKubeAPI
from zeroserve.kube.certs import make_ca, serving_cert
from zeroserve.local.sandbox import Sandbox
from zeroserve.local.sandbox.network import _free_subnet

from .controllers import ControllerManager
from .istio import IngressGateway
from .kinds import istio_crds, register_extra_types
from .mesh import Mesh
from .node import ImageMap, NodeAgent
from .services import ServiceProxy

log = logging.getLogger(__name__)

API_SECURE_PORT = 6443
DEFAULT_POD_CIDR = "198.18.0.0/16"


@dataclass
class TestCluster:
    """Start with :meth:`start`, stop with :meth:`stop` (removes everything it made)."""

    __test__ = False  # not a pytest class

    directory: Path
    images: ImageMap = field(default_factory=ImageMap.default)
    pod_cidr: str = DEFAULT_POD_CIDR
    cluster_domain: str = "cluster.local"
    gateway_ports: tuple[int, int] = (0, 0)
    with_gateway: bool = True
    authorization: bool = True
    """Authenticate requests and authorize them with RBAC (tests/fakes/kubeapi/auth.py);
    every 403 is a line in :attr:`forbidden_log`."""

    def __post_init__(self) -> None:
        self.sandbox: Sandbox | None = None
        self.api: FakeKubeAPI | None = None
        self.controllers: ControllerManager | None = None
        self.services: ServiceProxy | None = None
        self.node: NodeAgent | None = None
        self.gateway: IngressGateway | None = None
        self.mesh: Mesh | None = None
        self.kubeconfig = self.directory / "kubeconfig"
        self.forbidden_log = self.directory / "forbidden.jsonl"
        self.audit_log = self.directory / "audit.jsonl"
        """With authorization: each (user, verb, group, resource) the API server allowed,
        once (tests/fakes/kubeapi/auth.py ``Auth.audit``)."""

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        self.sandbox = sandbox = await Sandbox.start("pod", pod_cidr=self.pod_cidr)
        assert sandbox.network is not None
        node_ip = sandbox.network.gateway
        service_subnet = _free_subnet(self.pod_cidr)
        api_service_ip = str(next(service_subnet.hosts()))

        ca, ca_key = make_ca()
        self.ca_file, _ = ca.write(self.directory, "ca")
        api_pair = serving_cert(
            ca,
            ca_key,
            "kube-apiserver",
            dns=[
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                f"kubernetes.default.svc.{self.cluster_domain}",
                "localhost",
            ],
            ips=[node_ip, api_service_ip, "127.0.0.1"],
        )
        cert_file, key_file = api_pair.write(self.directory, "apiserver")
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(cert_file, key_file)

        # the node agent signs the pods' projected tokens with this key, and the API server
        # verifies them with it
        key = secrets.token_bytes(32)
        key_path = sandbox.state.dir / "serviceaccount.key"
        key_path.touch(mode=0o600)
        key_path.write_bytes(key)
        self.api = api = FakeKubeAPI(
            crds=istio_crds(), namespaces=(*DEFAULT_NAMESPACES, "istio-system")
        )
        register_extra_types(api)
        if self.authorization:
            admin_token = secrets.token_urlsafe(24)
            self.forbidden_log.unlink(missing_ok=True)
            self.audit_log.unlink(missing_ok=True)
            api.auth = Auth(
                api.list,
                tokens={admin_token: User("kubernetes-admin", (MASTERS, AUTHENTICATED))},
                service_account_key=key,
                log_path=self.forbidden_log,
                audit_path=self.audit_log,
            )
            for obj in bootstrap_policy():
                api.put(obj)
        else:
            admin_token = "fake-token"
        api.extra_listeners.append((node_ip, API_SECURE_PORT, tls))
        await api.start()
        # kubectl and helm reach it over HTTPS: client-go sends no token over plain HTTP
        api.write_kubeconfig(
            self.kubeconfig,
            token=admin_token,
            server=f"https://{node_ip}:{API_SECURE_PORT}",
            ca_pem=ca.cert_pem,
        )

        self.controllers = ControllerManager(api, root_ca_pem=ca.cert_pem.decode())
        await self.controllers.start()
        self.services = ServiceProxy(
            api,
            bridge=sandbox.network.bridge,
            subnet=service_subnet,
            cluster_domain=self.cluster_domain,
            api_endpoint=(node_ip, API_SECURE_PORT),
        )
        await self.services.start()
        self.mesh = Mesh(api, address=self.services.take_address(), bridge=sandbox.network.bridge)
        await self.mesh.start()
        if self.mesh.enabled:
            self.services.mesh = self.mesh
        api.admission = Admission(api.list, api.get, self.services.resolve)
        self.node = NodeAgent(
            api,
            sandbox,
            log_dir=self.directory / "pods",
            images=self.images,
            services=self.services,
            mesh=self.mesh if self.mesh.enabled else None,
        )
        await self.node.start()
        if self.with_gateway:
            await self._start_gateway()

    async def _start_gateway(self) -> None:
        assert self.api is not None and self.services is not None
        self.gateway = IngressGateway(
            self.api,
            self.services.resolve,
            public_port=self.gateway_ports[0],
            local_port=self.gateway_ports[1],
            source=self.mesh.gateway_source if self.mesh is not None else None,
        )
        await self.gateway.start()

    def ready_line(self) -> str:
        return json.dumps(
            {
                "kubeconfig": str(self.kubeconfig),
                "gateway_port": self.gateway.public_port if self.gateway else None,
                "local_gateway_port": self.gateway.local_port if self.gateway else None,
                "api": self.api.url if self.api else None,
                "logs": str(self.directory / "pods"),
                "forbidden": str(self.forbidden_log) if self.authorization else None,
                "audit": str(self.audit_log) if self.authorization else None,
                "mesh_unavailable": self.mesh.unavailable if self.mesh else "not started",
            }
        )

    async def stop(self) -> None:
        if self.gateway is not None:
            await self.gateway.stop()
        if self.node is not None:
            await self.node.stop()
        if self.mesh is not None:
            await self.mesh.stop()
        if self.services is not None:
            await self.services.stop()
        if self.controllers is not None:
            await self.controllers.stop()
        if self.api is not None:
            await self.api.stop()
        if self.sandbox is not None:
            await self.sandbox.close()
