"""Host names and URLs of routes, from ``config-domain``, ``config-network`` and the
route's labels and annotations (knative/serving ``pkg/reconciler/route/domains``).

A split's name is the route's name, or for a tag the ``tag-template`` rendered with
``Tag`` and ``Name`` (default ``{{.Tag}}-{{.Name}}``); its external host is the
``domain-template`` rendered with that ``Name``, the ``Namespace``, the ``Domain``
``config-domain`` picks and the route's annotations and labels (default
``{{.Name}}.{{.Namespace}}.{{.Domain}}``). Every split also answers on its cluster-local
names ``{name}.{namespace}.svc.cluster.local`` and ``{name}.{namespace}.svc``, served
only by the cluster-local gateway. A route labelled
``networking.knative.dev/visibility: cluster-local``, or whose domain is
``svc.cluster.local``, or that no ``config-domain`` selector matches, has only the
cluster-local names, and its URL is the cluster-local one; so has a tag that is
cluster-local by itself (Knative: the label on the tag's placeholder Service). External
URLs use ``default-external-scheme``; cluster-local ones are always ``http``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from zeroserve.api.configs import CLUSTER_LOCAL_DOMAIN, DomainConfig
from zeroserve.api.network import NetworkConfig
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
    scheme: str = "http"
    """The external URL's scheme (``default-external-scheme``)."""

    @property
    def url(self) -> str:
        if self.external:
            return f"{self.scheme}://{self.external}"
        return f"http://{self.cluster_local}"

    @property
    def cluster_local_url(self) -> str:
        return f"http://{self.cluster_local}"

    @property
    def public(self) -> tuple[str, ...]:
        """The hosts the public (ingress) gateway serves: the external one, if any."""
        return (self.external,) if self.external else ()

    @property
    def local(self) -> tuple[str, ...]:
        """The hosts only the cluster-local gateway serves."""
        return (self.cluster_local, self.short)

    @property
    def all(self) -> tuple[str, ...]:
        """Every host, external first."""
        return tuple(dict.fromkeys((*self.public, *self.local)))


def is_cluster_local(
    labels: Mapping[str, str], domains: DomainConfig, *, local_domain: str = CLUSTER_LOCAL_DOMAIN
) -> bool:
    """``local_domain``: the cluster-local domain, ``svc.{cluster domain}``."""
    if labels.get(VISIBILITY_LABEL) == CLUSTER_LOCAL:
        return True
    domain = domains.domain_for(labels)
    return domain is None or domain == local_domain


DEFAULT_NETWORK = NetworkConfig()


def hosts(
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    domains: DomainConfig,
    *,
    tag: str = "",
    cluster_domain: str = CLUSTER_DOMAIN,
    network: NetworkConfig = DEFAULT_NETWORK,
    annotations: Mapping[str, str] | None = None,
    cluster_local: bool = False,
) -> Hosts:
    """The hosts of route ``name`` (or of one of its tags) in ``namespace``.

    ``labels``/``annotations``: the route's (``config-domain`` selectors and the
    templates read them); ``network``: ``config-network`` (templates, external scheme);
    ``cluster_domain``: the cluster's DNS domain (a cluster may not use the default);
    ``cluster_local``: this split is cluster-local by itself (a tag whose placeholder
    Service says so) even when the route is public."""
    label = network.tag_template.render({"Name": name, "Tag": tag}) if tag else name
    local = f"{label}.{namespace}.svc"
    external = None
    domain = domains.domain_for(labels)
    if not cluster_local and not is_cluster_local(
        labels, domains, local_domain=f"svc.{cluster_domain}"
    ):
        values = {"Name": label, "Namespace": namespace, "Domain": domain or ""}
        external = network.domain_template.render(values, annotations or {}, labels)
    return Hosts(
        external=external,
        cluster_local=f"{local}.{cluster_domain}",
        short=local,
        scheme=network.default_external_scheme,
    )
