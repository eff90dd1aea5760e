"""Host names and URLs of routes, from ``config-domain`` and the route's labels.

Upstream's default templates (config-network): ``{name}.{namespace}.{domain}``
for the default split and ``{tag}-{name}.{namespace}.{domain}`` for a tag. Every
route also answers on its cluster-local names ``{name}.{namespace}.svc.cluster.local``
and ``{name}.{namespace}.svc``. A route labelled
``networking.knative.dev/visibility: cluster-local``, or whose domain is
``svc.cluster.local``, or that no ``config-domain`` selector matches, has only
the cluster-local names, and its URL is the cluster-local one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from zeroserve.api.configs import CLUSTER_LOCAL_DOMAIN, DomainConfig
from zeroserve.api.validate import CLUSTER_LOCAL, VISIBILITY_LABEL

CLUSTER_DOMAIN = "cluster.local"
"""The cluster's DNS domain; Kubernetes' default, and the only one locally."""


@dataclass(frozen=True, slots=True)
class Hosts:
    """The names one split (a route's default split, or one tag) answers on."""

    external: str | None
    """``{label}.{namespace}.{domain}``; None when only reachable inside the cluster."""
    cluster_local: str
    """``{label}.{namespace}.svc.cluster.local``."""
    short: str
    """``{label}.{namespace}.svc``."""

    @property
    def url(self) -> str:
        return f"http://{self.external or self.cluster_local}"

    @property
    def cluster_local_url(self) -> str:
        return f"http://{self.cluster_local}"

    @property
    def all(self) -> tuple[str, ...]:
        """Every host, external first: what the activator matches requests against."""
        names = (self.external, self.cluster_local, self.short)
        return tuple(dict.fromkeys(h for h in names if h))


def is_cluster_local(
    labels: Mapping[str, str], domains: DomainConfig, *, local_domain: str = CLUSTER_LOCAL_DOMAIN
) -> bool:
    """``local_domain``: the cluster-local domain, ``svc.{cluster domain}``."""
    if labels.get(VISIBILITY_LABEL) == CLUSTER_LOCAL:
        return True
    domain = domains.domain_for(labels)
    return domain is None or domain == local_domain


def hosts(
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    domains: DomainConfig,
    *,
    tag: str = "",
    cluster_domain: str = CLUSTER_DOMAIN,
) -> Hosts:
    """The hosts of route ``name`` (or of one of its tags) in ``namespace``;
    ``cluster_domain`` is the cluster's DNS domain (a cluster may not use the default)."""
    label = f"{tag}-{name}" if tag else name
    local = f"{label}.{namespace}.svc"
    external = None
    if not is_cluster_local(labels, domains, local_domain=f"svc.{cluster_domain}"):
        external = f"{label}.{namespace}.{domains.domain_for(labels)}"
    return Hosts(external=external, cluster_local=f"{local}.{cluster_domain}", short=local)
