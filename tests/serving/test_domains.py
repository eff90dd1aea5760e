"""config-domain: switching domains changes every URL and the routing table; label
selectors pick per-service domains; cluster-local services get no external host."""

from __future__ import annotations

import pytest

from tests.api.manifests import (
    CONFIG_DOMAIN_EXAMPLE_COM,
    CONFIG_DOMAIN_SELECTORS,
    HELLO_V1,
    HELLO_V2,
    doc,
    dump,
    edit,
)
from zeroserve.api import load
from zeroserve.serving.controller import Controller
from zeroserve.topology import RevisionKey


def running(*texts: str) -> Controller:
    """Services applied, every revision ready."""
    c = Controller(0.0)
    for i, text in enumerate(texts):
        c.apply(load(text, "svc.yaml"), now=1.0 + i)
        for key in c.revisions():
            c.set_revision_state(key, ready=True, now=1.5 + i)
    return c


def urls(c: Controller) -> dict[str, str]:
    return {s["metadata"]["name"]: s["status"]["url"] for s in c.get("ksvc")}


def test_switching_localhost_to_example_com_changes_every_url_and_host() -> None:
    c = running(HELLO_V1, HELLO_V2)
    assert urls(c) == {"hello": "http://hello.default.localhost"}
    version = c.version
    assert c.apply(load(CONFIG_DOMAIN_EXAMPLE_COM, "domain.yaml"), now=5.0) == [
        "configmap/config-domain created"
    ]
    assert c.version == version + 1
    assert urls(c) == {"hello": "http://hello.default.example.com"}
    [route] = c.routing_table()
    assert route.hosts == ("hello.default.example.com",)
    assert route.local_hosts == ("hello.default.svc.cluster.local", "hello.default.svc")
    assert {tag: t.hosts[0] for tag, t in route.tags.items()} == {
        "current": "current-hello.default.example.com",
        "latest": "latest-hello.default.example.com",
    }
    [svc] = c.get("ksvc")
    assert [t.get("url") for t in svc["status"]["traffic"]] == [
        None,
        "http://current-hello.default.example.com",
        "http://latest-hello.default.example.com",
    ]
    assert c.get("route")[0]["status"]["url"] == "http://hello.default.example.com"
    # Re-applying the same map changes nothing; deleting it restores localhost.
    assert c.apply(load(CONFIG_DOMAIN_EXAMPLE_COM, "domain.yaml"), now=6.0) == [
        "configmap/config-domain unchanged"
    ]
    assert c.version == version + 1
    assert c.delete("cm", "knative-serving", "config-domain") == 'configmap "config-domain" deleted'
    assert urls(c) == {"hello": "http://hello.default.localhost"}


def labelled(name: str, **labels: str) -> str:
    svc = edit(doc(HELLO_V1), ("metadata", "name"), name)
    return dump(edit(svc, ("metadata", "labels"), labels) if labels else svc)


@pytest.mark.parametrize(
    ("labels", "url", "external"),
    [
        pytest.param({}, "http://shop.default.example.com", True, id="default-domain"),
        pytest.param(
            {"app": "nonprofit"}, "http://shop.default.example.org", True, id="selected-domain"
        ),
        pytest.param(
            {"app": "secret"},
            "http://shop.default.svc.cluster.local",
            False,
            id="svc-cluster-local-domain",
        ),
        pytest.param(
            {"networking.knative.dev/visibility": "cluster-local"},
            "http://shop.default.svc.cluster.local",
            False,
            id="visibility-label",
        ),
    ],
)
def test_label_selectors_pick_the_domain(labels: dict[str, str], url: str, external: bool) -> None:
    c = running(CONFIG_DOMAIN_SELECTORS, labelled("shop", **labels))
    assert urls(c) == {"shop": url}
    [route] = c.routing_table()
    assert route.local_hosts == ("shop.default.svc.cluster.local", "shop.default.svc")
    assert route.hosts == ((url.removeprefix("http://"),) if external else ())
    assert c.get("route")[0]["status"]["address"] == {
        "url": "http://shop.default.svc.cluster.local"
    }


def test_services_get_their_own_domains_side_by_side() -> None:
    c = running(CONFIG_DOMAIN_SELECTORS, labelled("charity", app="nonprofit"), labelled("store"))
    assert urls(c) == {
        "charity": "http://charity.default.example.org",
        "store": "http://store.default.example.com",
    }


def test_without_a_catch_all_domain_unmatched_services_are_cluster_local() -> None:
    only_selected = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "config-domain", "namespace": "knative-serving"},
        "data": {"example.org": "selector:\n  app: nonprofit\n"},
    }
    c = running(dump(only_selected), labelled("store"))
    assert urls(c) == {"store": "http://store.default.svc.cluster.local"}


def test_namespaces_are_part_of_every_host() -> None:
    svc = edit(doc(HELLO_V1), ("metadata", "namespace"), "shop")
    c = running(dump(svc))
    assert urls(c) == {"hello": "http://hello.shop.localhost"}
    assert c.routing_table()[0].targets[0].revision == RevisionKey("shop", "hello-00001")


def test_kubernetes_mode_default_domain() -> None:
    c = Controller(0.0, local=False, default_domain="svc.cluster.local")
    c.apply(load(HELLO_V1, "svc.yaml"), now=1.0)
    assert urls(c) == {"hello": "http://hello.default.svc.cluster.local"}
