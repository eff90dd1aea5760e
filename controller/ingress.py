"""How a route's hosts reach the activator: an Istio VirtualService per route, and a
placeholder Service per cluster-local name. Pure functions; no I/O.

Every host of a route (the external one from ``config-domain``, the tag hosts, and the
cluster-local ``{name}.{namespace}.svc.{cluster-domain}`` names) goes, unweighted, to the
activator Service. No per-revision split is programmed in the mesh, on purpose:

- the activator is always on the request path (upstream's ``target-burst-capacity: -1``),
  so every request passes it anyway, and it already splits by the Route's
  ``status.traffic``, exactly over every 100 requests (Envoy's weights are random per
  request) and with the revisions' concurrency limits in view;
- a traffic change therefore reaches the data plane as one Route status write that the
  activators watch, with no Envoy reconfiguration and no window in which the mesh and the
  activator disagree; the VirtualService changes only when the set of hosts does (a tag,
  a domain);
- the activator reads the target from ``Host``, which Istio passes through unchanged,
  so no ``Knative-Serving-Revision`` headers need to be appended per split.

The placeholder Services (``ExternalName`` to the activator Service) give the
cluster-local names a DNS record, as upstream's do: without one a client in the cluster
could not resolve ``hello.default.svc.cluster.local`` at all. With a sidecar, the mesh
gateway rule of the VirtualService then applies; without one, DNS takes the request to
the activator directly.
"""

from __future__ import annotations

from collections.abc import Iterable

from controller.config import Settings
from controller.meta import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    ROUTE_LABEL,
    owner_reference,
    with_hash,
)
from zeroserve.api.names import child_name
from zeroserve.api.objects import Obj
from zeroserve.serving.domains import Hosts

ACTIVATOR_PORT = 80
"""The activator Service's port (its pods listen on 8012)."""


def virtual_service_name(route: str) -> str:
    """``<route>-ingress``, shortened with a hash past 63 characters (Knative's
    ``kmeta.ChildName``, as net-istio names its VirtualServices)."""
    return child_name(route, "-ingress")


def host_names(splits: Iterable[Hosts]) -> list[str]:
    """Every name of every split, external ones first, without duplicates."""
    out: dict[str, None] = {}
    for hosts in splits:
        out.update(dict.fromkeys(hosts.all))
    return list(out)


def virtual_service(route: Obj, hosts: list[str], settings: Settings) -> Obj:
    """``<route>-ingress`` in the route's namespace, owned by the Route: ``hosts`` via the
    ingress gateway and the mesh, all to the activator."""
    meta = route["metadata"]
    body: Obj = {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": {
            "name": virtual_service_name(meta["name"]),
            "namespace": meta["namespace"],
            "labels": {ROUTE_LABEL: meta["name"], MANAGED_BY_LABEL: MANAGED_BY},
            "ownerReferences": [owner_reference(route)],
        },
        "spec": {
            "hosts": list(hosts),
            "gateways": [settings.ingress_gateway, "mesh"],
            "http": [
                {
                    "route": [
                        {
                            "destination": {
                                "host": settings.activator_host,
                                "port": {"number": ACTIVATOR_PORT},
                            },
                            "weight": 100,
                        }
                    ],
                }
            ],
        },
    }
    return with_hash(body)


def placeholder_service(route: Obj, name: str, settings: Settings) -> Obj:
    """Service ``name`` (the route's name, or ``{tag}-{route}``): a DNS name for the
    cluster-local host, pointing at the activator Service."""
    meta = route["metadata"]
    body: Obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": {ROUTE_LABEL: meta["name"], MANAGED_BY_LABEL: MANAGED_BY},
            "ownerReferences": [owner_reference(route)],
        },
        "spec": {
            "type": "ExternalName",
            "externalName": settings.activator_host,
            "ports": [
                {
                    "name": "http",
                    "port": ACTIVATOR_PORT,
                    "targetPort": ACTIVATOR_PORT,
                    "protocol": "TCP",
                }
            ],
        },
    }
    return with_hash(body)
