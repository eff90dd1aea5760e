"""DomainMappings on the cluster, pure: the domain's claim, the reference's cluster-local
host, and the mapping's status, after knative/serving ``pkg/reconciler/domainmapping``.

A mapping goes through the same steps as upstream's reconciler, stopping at the first
that fails (the later conditions stay Unknown):

1. the claim: the cluster-scoped ClusterDomainClaim named after the domain must name the
   mapping's namespace in ``spec.namespace``. When there is none, the controller creates
   it if ``config-network`` ``autocreate-cluster-domain-claims`` is true; otherwise an
   administrator creates it. A claim for another namespace (or none, without autocreate)
   makes the mapping not Ready: ``DomainClaimed=False``, reason ``DomainAlreadyClaimed``;
2. the reference: a Knative Service or Route in the mapping's namespace, whose
   ``status.address.url`` must be ``http://{name}.{namespace}.svc.{cluster domain}``;
   otherwise ``ReferenceResolved=False``, reason ``ResolveFailed``;
3. the VirtualService (``ingress.domain_mapping_virtual_service``): the domain on the
   public gateway, its authority rewritten to the target's cluster-local host;
   ``IngressReady`` is True once it is in place as rendered.

A mapping carries the finalizer ``domainmappings.serving.knative.dev``: when it is deleted,
with autocreate on, the controller deletes the claim it held (so another namespace may
take the domain), then removes the finalizer.

The conditions are local mode's (``zeroserve.serving.domainmapping.mapping_conditions``):
``CertificateProvisioned`` is True with ``TLSNotEnabled`` once the domain is claimed (no
TLS, as config-network's ``external-domain-tls`` default). ``status.url`` is
``{default-external-scheme}://{domain}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from controller.meta import generation_of, meta
from zeroserve.api.objects import Obj
from zeroserve.kube import ObjectKey, ResourceRef
from zeroserve.serving.domainmapping import mapping_conditions
from zeroserve.serving.state import Conditions
from zeroserve.serving.status import conditions_list, stamp

DOMAIN_MAPPINGS = ResourceRef("serving.knative.dev", "v1beta1", "domainmappings")
CLUSTER_DOMAIN_CLAIMS = ResourceRef(
    "networking.internal.knative.dev", "v1alpha1", "clusterdomainclaims", namespaced=False
)

FINALIZER = "domainmappings.serving.knative.dev"
"""Knative's finalizer on a DomainMapping: its claim is released before it goes."""
ADDRESSABLE_KINDS = {("serving.knative.dev", "Service"), ("serving.knative.dev", "Route")}
"""The kinds a reference may name here (the controller watches their status)."""


def domain_claim(domain: str, namespace: str) -> Obj:
    """The ClusterDomainClaim that gives ``domain`` to ``namespace`` (upstream's
    ``MakeDomainClaim``: no owner, a cluster-scoped object cannot have a namespaced one)."""
    return {
        "apiVersion": CLUSTER_DOMAIN_CLAIMS.api_version,
        "kind": "ClusterDomainClaim",
        "metadata": {"name": domain},
        "spec": {"namespace": namespace},
    }


@dataclass(frozen=True)
class Claim:
    owned: bool
    """The claim names the mapping's namespace (or is being created for it)."""
    create: Obj | None = None
    """A claim to create (autocreate on, none there)."""


def claim(mapping: Obj, claims: Mapping[ObjectKey, Obj], *, autocreate: bool) -> Claim:
    m = meta(mapping)
    existing = claims.get(("", m["name"]))
    if existing is None:
        if autocreate:
            return Claim(True, domain_claim(m["name"], m["namespace"]))
        return Claim(False)
    return Claim(((existing.get("spec") or {}).get("namespace")) == m["namespace"])


def releases_claim(mapping: Obj, claims: Mapping[ObjectKey, Obj], *, autocreate: bool) -> bool:
    """Whether a deleted mapping's claim is deleted with it: only with autocreate on (an
    administrator's claims stay), and only the claim for the mapping's namespace."""
    m = meta(mapping)
    existing = claims.get(("", m["name"]))
    return (
        autocreate
        and existing is not None
        and (existing.get("spec") or {}).get("namespace") == m["namespace"]
    )


def resolve(
    mapping: Obj, objects: Mapping[tuple[str, str], Mapping[ObjectKey, Obj]], cluster_domain: str
) -> tuple[str, str]:
    """(the target's cluster-local host, "") or ("", why not). ``objects``: the watched
    Knative Services and Routes by (group, kind)."""
    m = meta(mapping)
    ref = (mapping.get("spec") or {}).get("ref") or {}
    group = str(ref.get("apiVersion") or "").partition("/")[0]
    kind, name = str(ref.get("kind") or ""), str(ref.get("name") or "")
    namespace = str(ref.get("namespace") or m["namespace"])
    if (group, kind) not in ADDRESSABLE_KINDS:
        return "", (
            f"spec.ref: {kind} ({ref.get('apiVersion')}) cannot be resolved here: name a "
            "Knative Service or Route (serving.knative.dev/v1)"
        )
    target = objects.get((group, kind), {}).get((namespace, name))
    if target is None:
        return "", f'{kind}.{group} "{name}" not found in namespace "{namespace}"'
    url = str((((target.get("status") or {}).get("address") or {}).get("url")) or "")
    if not url:
        return "", f"address not set for {kind} {namespace}/{name}"
    _, _, rest = url.partition("://")
    host, _, path = rest.partition("/")
    if path.strip("/"):
        return "", f'resolved URI "{url}" contains a path'
    suffix = f".svc.{cluster_domain}"
    parts = host.removesuffix(suffix).split(".")
    if not host.endswith(suffix) or len(parts) != 2:
        return "", f'resolved URI "{url}" must be of the form {{name}}.{{namespace}}{suffix}'
    if parts[1] != m["namespace"]:
        return "", f'resolved URI "{url}" must be in same namespace as DomainMapping'
    return host, ""


def status(
    mapping: Obj,
    old: Conditions,
    *,
    claimed: bool,
    resolved: str | None,
    ingress_ready: bool,
    scheme: str,
    now: float,
) -> Obj:
    """The mapping's status, with the conditions local mode gives it
    (``zeroserve.serving.domainmapping.mapping_conditions``; ``resolved``: None when not
    tried, "" when resolved, else why not). A condition keeps its
    ``lastTransitionTime`` while its status stays."""
    found = mapping_conditions(claimed=claimed, resolved=resolved, ingress_ready=ingress_ready)
    conditions = stamp(old, found, now)
    url = f"{scheme}://{meta(mapping)['name']}"
    return {
        "observedGeneration": generation_of(mapping),
        "url": url,
        "address": {"url": url},
        "conditions": conditions_list(conditions),
    }
