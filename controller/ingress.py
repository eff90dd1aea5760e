"""How a route's hosts reach the activator: Istio VirtualServices per route (and per
DomainMapping), and a placeholder Service per cluster-local name. Pure functions; no I/O.

Two VirtualServices per route, as Knative's net-istio makes them
(``pkg/reconciler/ingress/resources/virtual_service.go``):

- ``<route>-ingress`` is bound to the public gateways and the cluster-local gateways of
  ``config-istio``; each http rule names in ``match.gateways`` which gateway it applies
  to: the public (external) names only through the public gateways, the cluster-local
  names (``.svc.cluster.local``, ``.svc``, of the route and of each tag) only through the
  cluster-local ones. A cluster-local route (or tag) has no public rule, and a
  cluster-local route's VirtualService is bound to no public gateway at all;
- ``<route>-mesh``: the cluster-local names, gateway ``mesh`` (clients with a sidecar).

Every rule has ``retries: {attempts: 0}`` (net-istio's, overriding Istio's two retries).
With ``tag-header-based-routing``, each tag also gets a rule, before the others, that
matches the route's default names plus ``Knative-Serving-Tag: <tag>`` and rewrites the
authority to the tag's name (so the activator routes it to the tag by Host).

Every host goes, unweighted, to the activator Service. No per-revision split is
programmed in the mesh, on purpose:

- the activator is always on the request path (upstream's ``target-burst-capacity: -1``),
  so every request passes it anyway, and it already splits by the Route's
  ``status.traffic``, exactly over every 100 requests (Envoy's weights are random per
  request) and with the revisions' concurrency limits in view;
- a traffic change therefore reaches the data plane as one Route status write that the
  activators watch, with no Envoy reconfiguration and no window in which the mesh and the
  activator disagree; the VirtualService's rules change only when the set of hosts does
  (a tag, a domain), and its rollout annotation (the gradual-rollout state the
  controller keeps between passes) with each rollout step;
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
from dataclasses import dataclass

from controller.config import IstioGateways, Settings
from controller.meta import (
    DOMAIN_MAPPING_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    ROUTE_LABEL,
    owner_reference,
    with_hash,
)
from zeroserve.api.names import child_name
from zeroserve.api.objects import Obj
from zeroserve.api.validate import CLUSTER_LOCAL, VISIBILITY_LABEL
from zeroserve.serving.domains import Hosts

ACTIVATOR_PORT = 80
"""The activator Service's port (its pods listen on 8012)."""
ACTIVATOR_H2C_PORT = 81
"""Its port named ``http2`` (same pods, same 8012): Istio then speaks HTTP/2 to it, as
net-istio sends h2c revisions' traffic to Knative's activator port ``http2``."""
MESH = "mesh"
"""Istio's name for the sidecars of the mesh, as a VirtualService gateway."""
TAG_HEADER = "Knative-Serving-Tag"
"""With ``tag-header-based-routing``, a request for a route's host carrying this header
goes to the named tag (Knative's ``RouteTagKey``)."""
ROLLOUT_ANNOTATION = "networking.internal.knative.dev/rollout"
"""The route's gradual-rollout state between the controller's passes (Knative keeps it
under this name on the route's Ingress; here on ``<route>-ingress``), in Knative's JSON
shape (``zeroserve.serving.rollout.to_json``)."""
NO_RETRIES: Obj = {"attempts": 0}
"""Istio retries a failed request twice by default; Knative (net-istio) turns that off on
every route, since a request may not be idempotent and the activator retries what is safe."""


@dataclass(frozen=True)
class Split:
    """The hosts of one traffic target of a route: its default split (``tag`` "") or a tag."""

    tag: str
    public: tuple[str, ...]
    """Names served by the public gateway (external names); empty when cluster-local."""
    local: tuple[str, ...]
    """Cluster-local names (``.svc.cluster.local``, ``.svc``): local gateway and mesh."""


def split_of(hosts: Hosts, tag: str, *, cluster_local: bool) -> Split:
    """A split from the shared host computation; ``cluster_local`` (the route's or the
    tag's visibility) drops its external name."""
    public = (hosts.external,) if hosts.external and not cluster_local else ()
    local = tuple(h for h in (hosts.cluster_local, hosts.short) if h)
    return Split(tag, public, local)


def virtual_service_name(route: str) -> str:
    """``<route>-ingress``, shortened with a hash past 63 characters (Knative's
    ``kmeta.ChildName``, as net-istio names its VirtualServices)."""
    return child_name(route, "-ingress")


def mesh_virtual_service_name(route: str) -> str:
    """``<route>-mesh``: the cluster-local names for the sidecars (net-istio's name)."""
    return child_name(route, "-mesh")


def host_names(splits: Iterable[Split]) -> list[str]:
    """Every name of every split, public ones first, without duplicates."""
    out: dict[str, None] = {}
    for split in splits:
        out.update(dict.fromkeys(split.public))
    for split in splits:
        out.update(dict.fromkeys(split.local))
    return list(out)


def authority_prefixes(hosts: Iterable[str]) -> list[str]:
    """The fewest authority prefixes that match ``hosts`` (with or without a port): one
    that starts another makes that one redundant (``x.ns.svc`` covers
    ``x.ns.svc.cluster.local``), as net-istio deduplicates them."""
    out: list[str] = []
    for host in sorted(set(hosts)):
        if not any(host.startswith(p) for p in out):
            out.append(host)
    return out


def _match(hosts: Iterable[str], gateways: Iterable[str], tag: str = "") -> list[Obj]:
    out = []
    for prefix in authority_prefixes(hosts):
        m: Obj = {"gateways": sorted(gateways), "authority": {"prefix": prefix}}
        if tag:
            m["headers"] = {TAG_HEADER: {"exact": tag}}
        out.append(m)
    return out


def _rule(match: list[Obj], settings: Settings, rewrite: str = "", *, h2c: bool = False) -> Obj:
    rule: Obj = {
        "match": match,
        "route": [
            {
                "destination": {
                    "host": settings.activator_host,
                    # the port named http2 makes Istio keep HTTP/2 (gRPC) to the activator
                    "port": {"number": ACTIVATOR_H2C_PORT if h2c else ACTIVATOR_PORT},
                },
                "weight": 100,
            }
        ],
        "retries": dict(NO_RETRIES),
    }
    if rewrite:
        rule["rewrite"] = {"authority": rewrite}
    return rule


def http_rules(
    splits: list[Split],
    public_gateways: Iterable[str],
    local_gateways: Iterable[str],
    settings: Settings,
    *,
    tag_header: bool,
    h2c: bool = False,
) -> list[Obj]:
    """The rules of one VirtualService, in Istio's order of evaluation: with the tag header
    on, one rule per tag (the default split's hosts plus ``Knative-Serving-Tag: <tag>``,
    authority rewritten to the tag's host, so the activator routes it there by Host); then
    each split's public names through ``public_gateways`` and its cluster-local names
    through ``local_gateways``. An unknown tag matches no header rule and goes where the
    host goes. A cluster-local tag is never reached through a public gateway."""
    public_gateways, local_gateways = list(public_gateways), list(local_gateways)
    rules: list[Obj] = []
    default = next((s for s in splits if not s.tag), None)
    if tag_header and default is not None:
        for split in splits:
            if not split.tag:
                continue
            if default.public and split.public and public_gateways:
                rules.append(
                    _rule(
                        _match(default.public, public_gateways, split.tag),
                        settings,
                        split.public[0],
                        h2c=h2c,
                    )
                )
            if default.local and split.local and local_gateways:
                rules.append(
                    _rule(
                        _match(default.local, local_gateways, split.tag),
                        settings,
                        split.local[0],
                        h2c=h2c,
                    )
                )
    for split in splits:
        if split.public and public_gateways:
            rules.append(_rule(_match(split.public, public_gateways), settings, h2c=h2c))
        if split.local and local_gateways:
            rules.append(_rule(_match(split.local, local_gateways), settings, h2c=h2c))
    return rules


def _virtual_service(
    owner: Obj,
    name: str,
    hosts: list[str],
    http: list[Obj],
    annotations: dict[str, str] | None = None,
) -> Obj:
    meta = owner["metadata"]
    gateways = sorted({g for rule in http for m in rule["match"] for g in m["gateways"]})
    labels = {MANAGED_BY_LABEL: MANAGED_BY}
    if owner["kind"] == "Route":
        labels[ROUTE_LABEL] = meta["name"]
    else:
        labels[DOMAIN_MAPPING_LABEL] = meta["name"]
    body: Obj = {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": labels,
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": {"hosts": hosts, "gateways": gateways, "http": http},
    }
    if annotations:
        body["metadata"]["annotations"] = dict(annotations)
    return with_hash(body)


def virtual_services(
    route: Obj,
    splits: list[Split],
    gateways: IstioGateways,
    settings: Settings,
    *,
    tag_header: bool = False,
    rollout: str = "",
    h2c: bool = False,
) -> dict[str, Obj | None]:
    """A route's VirtualServices by name, as net-istio makes them (None: none wanted);
    ``h2c``: a revision the route sends traffic to has its port named h2c, so the
    gateway keeps HTTP/2 to the activator (its ``http2`` port):

    - ``<route>-ingress``: every name, bound to the public gateways (only for the public
      names, by ``match.gateways`` per rule) and to the cluster-local gateways (only for
      the cluster-local names); a cluster-local route is bound to no public gateway at all.
      It carries the route's rollout state ``rollout`` (JSON) in ``ROLLOUT_ANNOTATION``
      (left out when ""), so each rollout step rewrites it;
    - ``<route>-mesh``: the cluster-local names for the sidecars (gateway ``mesh``).
    """
    name = route["metadata"]["name"]
    ingress_rules = http_rules(
        splits,
        gateways.ingress_names,
        gateways.local_names,
        settings,
        tag_header=tag_header,
        h2c=h2c,
    )
    local = [Split(s.tag, (), s.local) for s in splits]
    mesh_rules = http_rules(local, (), (MESH,), settings, tag_header=tag_header, h2c=h2c)
    return {
        virtual_service_name(name): (
            _virtual_service(
                route,
                virtual_service_name(name),
                host_names(splits),
                ingress_rules,
                {ROLLOUT_ANNOTATION: rollout} if rollout else None,
            )
            if ingress_rules
            else None
        ),
        mesh_virtual_service_name(name): (
            _virtual_service(route, mesh_virtual_service_name(name), host_names(local), mesh_rules)
            if mesh_rules
            else None
        ),
    }


def domain_mapping_virtual_service(
    mapping: Obj, target_host: str, gateways: IstioGateways, settings: Settings
) -> Obj:
    """``<domain>-ingress`` for a DomainMapping: the domain on the public gateways, its
    authority rewritten to the target's cluster-local host (the activator routes by Host)."""
    domain = mapping["metadata"]["name"]
    rule = _rule(_match((domain,), gateways.ingress_names), settings, target_host)
    return _virtual_service(mapping, virtual_service_name(domain), [domain], [rule])


def placeholder_service(
    route: Obj, name: str, settings: Settings, *, cluster_local: bool = False
) -> Obj:
    """Service ``name`` (the route's name, or ``{tag}-{route}``): a DNS name for the
    cluster-local host, pointing at the activator Service. ``cluster_local``: the tag's
    visibility label, as read from the existing Service, is kept on it."""
    meta = route["metadata"]
    labels = {ROUTE_LABEL: meta["name"], MANAGED_BY_LABEL: MANAGED_BY}
    if cluster_local:
        labels[VISIBILITY_LABEL] = CLUSTER_LOCAL
    body: Obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": labels,
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
