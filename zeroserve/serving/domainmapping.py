"""DomainMapping (``serving.knative.dev/v1beta1``), locally: claims, conditions, URL, routes.

Knative's reconciler (knative/serving ``pkg/reconciler/domainmapping/reconciler.go``)
and condition set (``pkg/apis/serving/v1beta1/domainmapping_lifecycle.go``), in the
order it works:

1. ``status.url`` (and ``status.address.url``) is ``{default-external-scheme}://{domain}``.
2. The domain must be claimed by the mapping's namespace (Knative: a
   ClusterDomainClaim). Locally the first DomainMapping of a domain claims it (oldest
   first, then by namespace); a mapping of the same domain in another namespace gets
   ``DomainClaimed`` False ``DomainAlreadyClaimed`` and nothing else is looked at.
   Deleting the claiming mapping releases the claim, and the next mapping takes it.
3. ``CertificateProvisioned`` is True with reason ``TLSNotEnabled``: zeroserve has no
   TLS (``external-domain-tls`` stays disabled).
4. ``spec.ref`` must resolve to an address ``{name}.{namespace}.svc.cluster.local``:
   a Knative Service or Route (``serving.knative.dev/v1``), or the Kubernetes Service
   (``v1``) a Route makes under its own name. Otherwise ``ReferenceResolved`` is
   False ``ResolveFailed`` with the resolver's words (``failed to get object ...
   not found`` for a missing one, ``address not set for ...`` for an object that has
   no address, ``failed to get lister for ...`` for a kind zeroserve does not serve).
5. ``IngressReady``: True once the target route serves traffic (it has a routing
   table entry); until then Unknown ``IngressNotConfigured``.

``Ready`` is False when one of the four is (its reason), else Unknown when one is,
else True. A ready mapping's domain is a public host routed like its target's
default split (:func:`routes`); tags and cluster-local names are not mapped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from zeroserve.api.objects import CORE_API_VERSION, SERVING_API_VERSION, ObjectRef
from zeroserve.serving.routes import routing_table
from zeroserve.serving.state import (
    FALSE,
    TRUE,
    UNKNOWN,
    Condition,
    DomainMappingRecord,
    Key,
    State,
)
from zeroserve.serving.status import READY, combine, conditions_list, stamp
from zeroserve.topology import Route

DOMAIN_CLAIMED = "DomainClaimed"
REFERENCE_RESOLVED = "ReferenceResolved"
INGRESS_READY = "IngressReady"
CERTIFICATE_PROVISIONED = "CertificateProvisioned"
ALREADY_CLAIMED = (
    "DomainAlreadyClaimed",
    "The domain name is already in use by another DomainMapping",
)
TLS_NOT_ENABLED = ("TLSNotEnabled", "external-domain-tls is not enabled")
RESOLVE_FAILED = "ResolveFailed"
INGRESS_NOT_CONFIGURED = ("IngressNotConfigured", "Ingress has not yet been reconciled.")
CLUSTER_SUFFIX = ".svc.cluster.local"

_STORED_KINDS = {
    (SERVING_API_VERSION, "Configuration"): "configurations.serving.knative.dev",
    (SERVING_API_VERSION, "Revision"): "revisions.serving.knative.dev",
    (SERVING_API_VERSION, "DomainMapping"): "domainmappings.serving.knative.dev",
    (CORE_API_VERSION, "ConfigMap"): "configmaps",
    (CORE_API_VERSION, "Secret"): "secrets",
}
"""Kinds zeroserve stores that have no address: found, they cannot be mapped."""


def _resource(kind: str) -> str:
    """Kubernetes' guess of a kind's resource name (``meta.UnsafeGuessKindToResource``)."""
    lower = kind.lower()
    if lower.endswith("s"):
        return lower + "es"
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    return lower + "s"


def resolve(state: State, namespace: str, ref: ObjectRef) -> tuple[Key | None, str]:
    """The key of the route ``ref`` reaches and an empty message, or (None, why not)."""
    name = ref.name

    def not_found(resource: str) -> str:
        return f'failed to get object {namespace}/{name}: {resource} "{name}" not found'

    key = (namespace, name)
    if ref.api_version == SERVING_API_VERSION and ref.kind == "Service":
        if key not in state.services:
            return None, not_found("services.serving.knative.dev")
        return key, ""
    if ref.api_version == SERVING_API_VERSION and ref.kind == "Route":
        if key not in state.routes:
            return None, not_found("routes.serving.knative.dev")
        return key, ""
    if ref.api_version == CORE_API_VERSION and ref.kind == "Service":
        # A Route's Kubernetes Service has the Route's name (``{name}.{ns}.svc``).
        if key not in state.routes:
            return None, not_found("services")
        return key, ""
    resource = _STORED_KINDS.get((ref.api_version, ref.kind))
    if resource is not None:
        stored: dict[str, Any] = {
            "Configuration": state.configurations,
            "Revision": {(k.namespace, k.name): r for k, r in state.revisions.items()},
            "DomainMapping": state.domain_mappings,
            "ConfigMap": state.config_maps,
            "Secret": state.secrets,
        }
        if key not in stored[ref.kind]:
            return None, not_found(resource)
        return None, f"address not set for {ref.kind} {namespace}/{name} ({ref.api_version})"
    group, _, version = ref.api_version.rpartition("/")
    return None, (
        f"failed to get lister for {group}/{version}, Resource={_resource(ref.kind)}: "
        "zeroserve resolves Knative Services and Routes (serving.knative.dev/v1) and the "
        "Kubernetes Service (v1) of a Route"
    )


def url(state: State, record: DomainMappingRecord) -> str:
    return f"{state.configs.network.default_external_scheme}://{record.applied.meta.name}"


def claim(state: State) -> None:
    """Release the claims of deleted mappings; let unclaimed domains be taken by their
    oldest mapping."""
    for domain, ns in list(state.domain_claims.items()):
        if (ns, domain) not in state.domain_mappings:
            del state.domain_claims[domain]
    for (ns, domain), _ in sorted(
        state.domain_mappings.items(), key=lambda item: (item[1].created, item[0])
    ):
        state.domain_claims.setdefault(domain, ns)


def _programmed(state: State, key: Key) -> bool:
    route = state.routes.get(key)
    return route is not None and route.programmed is not None


def mapping_conditions(
    *, claimed: bool, resolved: str | None, ingress_ready: bool
) -> list[Condition]:
    """A mapping's conditions from what its reconcile found, locally and on Kubernetes
    alike (module doc): ``resolved`` is None when not tried (the claim failed), "" when
    the reference resolved, else why not."""
    cert = Condition(CERTIFICATE_PROVISIONED, UNKNOWN)
    reference = Condition(REFERENCE_RESOLVED, UNKNOWN)
    ingress = Condition(INGRESS_READY, UNKNOWN, *INGRESS_NOT_CONFIGURED)
    if not claimed:
        domain = Condition(DOMAIN_CLAIMED, FALSE, *ALREADY_CLAIMED)
    else:
        domain = Condition(DOMAIN_CLAIMED, TRUE)
        cert = Condition(CERTIFICATE_PROVISIONED, TRUE, *TLS_NOT_ENABLED)
        if resolved:
            reference = Condition(REFERENCE_RESOLVED, FALSE, RESOLVE_FAILED, resolved)
        elif resolved == "":
            reference = Condition(REFERENCE_RESOLVED, TRUE)
            if ingress_ready:
                ingress = Condition(INGRESS_READY, TRUE)
    # Knative's Ready: a failure first (in the order the reconciler marks them), else
    # the last condition still waiting.
    deps = [domain, cert, reference, ingress]
    return [*deps, combine(READY, deps)]


def conditions(state: State, key: Key) -> list[Condition]:
    """The local mapping's conditions (:func:`mapping_conditions`)."""
    ns, domain = key
    if state.domain_claims.get(domain) != ns:
        return mapping_conditions(claimed=False, resolved=None, ingress_ready=False)
    target, problem = resolve(state, ns, state.domain_mappings[key].applied.ref)
    return mapping_conditions(
        claimed=True,
        resolved=problem if target is None else "",
        ingress_ready=target is not None and _programmed(state, target),
    )


def refresh(state: State, now: float) -> None:
    """Settle claims, then recompute every mapping's conditions."""
    claim(state)
    for key, record in state.domain_mappings.items():
        record.conditions = stamp(record.conditions, conditions(state, key), now)


def is_ready(record: DomainMappingRecord) -> bool:
    ready = record.conditions.get(READY)
    return ready is not None and ready.status == TRUE


def routes(state: State, *, table: Sequence[Route] | None = None) -> list[Route]:
    """Each ready mapping's domain as a public host, routed like its target's default
    split (``table``: the routes' routing table, when the caller has it already)."""
    if table is None:
        table = routing_table(state)
    by_key = {(r.namespace, r.name): r for r in table}
    out = []
    for (ns, domain), record in sorted(state.domain_mappings.items()):
        if not is_ready(record):
            continue
        target, _ = resolve(state, ns, record.applied.ref)
        entry = by_key.get(target) if target is not None else None
        if entry is None:
            continue
        out.append(Route(namespace=ns, name=domain, hosts=(domain,), targets=entry.targets))
    return out


def status(state: State, record: DomainMappingRecord) -> dict[str, Any]:
    """``status`` as Knative shows it."""
    address = url(state, record)
    return {
        "observedGeneration": record.generation,
        "url": address,
        "address": {"url": address},
        "conditions": conditions_list(record.conditions),
    }
