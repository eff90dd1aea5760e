"""Host names from config-network (domain-template, tag-template, default-external-scheme),
public and cluster-local hosts apart in the routing table, per-tag cluster-local
visibility; and the activator's per-listener tables and tag-header routing over them."""

from __future__ import annotations

from collections import Counter

from activator.routing import RoutingTable
from tests.api.manifests import CONFIG_DOMAIN_EXAMPLE_COM
from zeroserve.api import load
from zeroserve.api.configs import DomainConfig
from zeroserve.serving.controller import Controller
from zeroserve.serving.domains import hosts
from zeroserve.topology import RevisionKey, Route, TagRoute, Target

V1 = RevisionKey("prod", "shop-00001")
V2 = RevisionKey("prod", "shop-00002")

NETWORK = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: config-network
  namespace: knative-serving
data:
  domain-template: '{{.Name}}-{{.Namespace}}.{{ index .Annotations "team" }}.{{.Domain}}'
  tag-template: '{{.Name}}-at-{{.Tag}}'
  default-external-scheme: https
"""

SHOP = """\
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: shop
  namespace: prod
  annotations:
    team: web
{labels}spec:
  template:
    spec:
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
          command: ["python", "examples/helloworld/app.py"]
          env:
            - name: TARGET
              value: "{target}"
  traffic:
    - latestRevision: true
      percent: 100
      tag: current
    - latestRevision: true
      percent: 0
      tag: next
"""
LOCAL_LABEL = "  labels:\n    networking.knative.dev/visibility: cluster-local\n"


def running(*texts: str) -> Controller:
    c = Controller(0.0)
    for i, text in enumerate(texts):
        c.apply(load(text, "x.yaml"), now=1.0 + i)
        for key in c.revisions():
            c.set_revision_state(key, ready=True, now=1.5 + i)
    return c


def test_templates_and_scheme_make_every_host_and_url() -> None:
    c = running(CONFIG_DOMAIN_EXAMPLE_COM, NETWORK, SHOP.format(labels="", target="v1"))
    [svc] = c.get("ksvc")
    status = svc["status"]
    assert status["url"] == "https://shop-prod.web.example.com"
    # the cluster-local address stays http, on the route's (not the template's) name
    assert status["address"] == {"url": "http://shop.prod.svc.cluster.local"}
    assert [t.get("url") for t in status["traffic"]] == [
        "https://shop-at-current-prod.web.example.com",
        "https://shop-at-next-prod.web.example.com",
    ]
    [route] = c.routing_table()
    assert route.hosts == ("shop-prod.web.example.com",)
    assert route.local_hosts == ("shop.prod.svc.cluster.local", "shop.prod.svc")
    assert route.tags["current"] == TagRoute(
        ("shop-at-current-prod.web.example.com",),
        ("shop-at-current.prod.svc.cluster.local", "shop-at-current.prod.svc"),
        V1,
    )


def test_a_cluster_local_route_has_no_public_host_and_an_http_url() -> None:
    c = running(NETWORK, SHOP.format(labels=LOCAL_LABEL, target="v1"))
    [svc] = c.get("ksvc")
    # Knative renders a cluster-local route with the default template and domain.
    assert svc["status"]["url"] == "http://shop.prod.svc.cluster.local"
    assert svc["status"]["traffic"][0]["url"] == "http://shop-at-current.prod.svc.cluster.local"
    [route] = c.routing_table()
    assert route.hosts == ()
    assert route.local_hosts == ("shop.prod.svc.cluster.local", "shop.prod.svc")
    assert all(t.hosts == () for t in route.tags.values())


def test_a_tag_can_be_cluster_local_on_its_own() -> None:
    """Knative: the visibility label on the tag's placeholder Service; the in-cluster
    controller sets ``RouteRecord.cluster_local_tags`` from it."""
    c = running(SHOP.format(labels="", target="v1"))
    c._state.routes[("prod", "shop")].cluster_local_tags = frozenset({"next"})
    [route] = c.routing_table()
    assert route.hosts == ("shop.prod.localhost",)
    assert route.tags["current"].hosts == ("current-shop.prod.localhost",)
    assert route.tags["next"].hosts == ()
    assert route.tags["next"].local_hosts == (
        "next-shop.prod.svc.cluster.local",
        "next-shop.prod.svc",
    )
    [svc] = c.get("ksvc")
    assert [t["url"] for t in svc["status"]["traffic"]] == [
        "http://current-shop.prod.localhost",
        "http://next-shop.prod.svc.cluster.local",
    ]


def test_hosts_keeps_its_defaults_for_callers_without_config_network() -> None:
    h = hosts("shop", "prod", {}, DomainConfig({"example.com": {}}), tag="v2")
    assert (h.external, h.public, h.local) == (
        "v2-shop.prod.example.com",
        ("v2-shop.prod.example.com",),
        ("v2-shop.prod.svc.cluster.local", "v2-shop.prod.svc"),
    )
    assert h.url == "http://v2-shop.prod.example.com"


# ----- the activator's tables ---------------------------------------------------------------

ROUTE = Route(
    "prod",
    "shop",
    ("shop.prod.example.com",),
    (Target(V1, 100),),
    {
        "next": TagRoute(("next-shop.prod.example.com",), ("next-shop.prod.svc",), V2),
        "hidden": TagRoute((), ("hidden-shop.prod.svc",), V2),
    },
    local_hosts=("shop.prod.svc.cluster.local", "shop.prod.svc"),
)
PRIVATE = Route(
    "prod", "internal", (), (Target(V2, 100),), local_hosts=("internal.prod.svc.cluster.local",)
)


def routed(table: RoutingTable, host: str, tag: bytes | None = None) -> RevisionKey | None:
    split = table.lookup(host.encode(), tag)
    return None if split is None else split.choose()


def test_the_public_table_has_only_public_hosts_and_the_local_one_only_local_names() -> None:
    public = RoutingTable([ROUTE, PRIVATE], listener="public")
    local = RoutingTable([ROUTE, PRIVATE], listener="local")
    both = RoutingTable([ROUTE, PRIVATE])
    assert public.hosts() == ["next-shop.prod.example.com", "shop.prod.example.com"]
    assert local.hosts() == [
        "hidden-shop.prod.svc",
        "internal.prod.svc.cluster.local",
        "next-shop.prod.svc",
        "shop.prod.svc",
        "shop.prod.svc.cluster.local",
    ]
    assert both.hosts() == sorted(public.hosts() + local.hosts())
    # A cluster-local host is unknown to the public table, however it is spelled.
    for host in ("internal.prod.svc.cluster.local", "INTERNAL.prod.svc.cluster.local.:80"):
        assert routed(public, host) is None
        assert routed(local, host) == V2
    assert routed(local, "shop.prod.example.com") is None
    assert routed(public, "shop.prod.svc") is None and routed(local, "shop.prod.svc") == V1


def test_a_bad_listener_name_is_refused() -> None:
    try:
        RoutingTable([], listener="private")  # type: ignore[arg-type]
    except ValueError as e:
        assert "listener must be one of all, public, local" in str(e)
    else:
        raise AssertionError("accepted")


def test_tag_header_routing_sends_a_default_host_to_the_tag() -> None:
    on = RoutingTable([ROUTE], listener="public", tag_header_routing=True)
    off = RoutingTable([ROUTE], listener="public")
    assert routed(on, "shop.prod.example.com", b"next") == V2
    assert routed(on, "Shop.Prod.Example.com:8080", b"next") == V2
    # a tag that is cluster-local by itself is still reachable by header (as in Knative,
    # whose header-match paths cover every tag)
    assert routed(on, "shop.prod.example.com", b"hidden") == V2
    # unknown tag, no header, or the feature off: where the host goes
    assert routed(on, "shop.prod.example.com", b"nope") == V1
    assert routed(on, "shop.prod.example.com") == V1
    assert routed(off, "shop.prod.example.com", b"next") == V1
    # the header matters only on a route's default hosts; unknown hosts stay unknown
    assert routed(on, "next-shop.prod.example.com", b"nope") == V2
    assert routed(on, "other.prod.example.com", b"next") is None
    # the local listener honours it on the cluster-local names too
    local = RoutingTable([ROUTE], listener="local", tag_header_routing=True)
    assert routed(local, "shop.prod.svc", b"next") == V2


def test_a_tag_split_by_a_rollout_is_split() -> None:
    tag = TagRoute(("cur-shop.prod.example.com",), (), V2, (Target(V1, 66), Target(V2, 34)))
    table = RoutingTable([Route("prod", "shop", (), (Target(V1, 100),), {"cur": tag})])
    split = table.lookup(b"cur-shop.prod.example.com")
    assert split is not None
    assert Counter(split.choose() for _ in range(100)) == {V1: 66, V2: 34}
    assert table.revisions() == {V1, V2}
