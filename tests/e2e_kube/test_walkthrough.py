"""The seed's story on the test cluster, as the README's "On Kubernetes" section tells it:
helm install, kubectl apply of the Knative docs' helloworld-go, its URL in ``kubectl get
ksvc``, curl through the gateway, scale to zero and back, a 20/80 split with tags,
config-domain, uninstall. The tests run in order on one cluster (module scope)."""

from __future__ import annotations

import collections
import json
from pathlib import Path

from benchmarks.kubeready import cold_round
from tests.chart.helm import render
from tests.chart.test_rbac import grants_of

from .conftest import (
    HELM,
    PYTESTMARK,
    REPO,
    SYSTEM,
    Cluster,
    assert_no_denials,
    manifest,
    wait_until,
)

HOST = "helloworld-go.default.example.com"

pytestmark = PYTESTMARK


def revision_pods(cluster: Cluster, service: str) -> list[dict]:
    pods = cluster.get("pods", "-n", "default", "-l", f"serving.knative.dev/service={service}")
    return [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]


def test_helloworld_gets_a_url_and_answers_through_the_gateway(cluster: Cluster) -> None:
    applied = cluster.kubectl("apply", "-f", "-", stdin=manifest("helloworld.yaml", target="World"))
    assert "service.serving.knative.dev/helloworld-go created" in applied
    cluster.kubectl("wait", "ksvc", "helloworld-go", "--for=condition=Ready", "--timeout=90s")
    table = cluster.kubectl("get", "ksvc")
    header, row = table.splitlines()[:2]
    assert header.split()[:3] == ["NAME", "URL", "LATESTCREATED"]
    assert row.split()[:2] == ["helloworld-go", f"http://{HOST}"]
    assert "True" in row.split()
    assert cluster.curl(HOST) == (200, "Hello World!")
    # inside the cluster, through knative-local-gateway, by the cluster-local name
    assert cluster.curl("helloworld-go.default.svc.cluster.local", local=True) == (
        200,
        "Hello World!",
    )
    # the public gateway never serves a cluster-local name
    assert cluster.curl("helloworld-go.default.svc.cluster.local")[0] == 404


def test_the_webhook_defaults_and_names_the_creator(cluster: Cluster) -> None:
    ksvc = cluster.get("ksvc", "helloworld-go")
    annotations = ksvc["metadata"]["annotations"]
    # the kubeconfig's user, from the request (the API server's userInfo)
    assert annotations["serving.knative.dev/creator"] == "kubernetes-admin"
    assert annotations["serving.knative.dev/lastModifier"] == "kubernetes-admin"
    spec = ksvc["spec"]["template"]["spec"]
    assert (spec["timeoutSeconds"], spec["containerConcurrency"]) == (300, 0)
    assert ksvc["spec"]["traffic"] == [{"latestRevision": True, "percent": 100}]


def test_kubectl_apply_of_a_bad_service_fails_with_the_field_path(cluster: Cluster) -> None:
    bad = manifest("helloworld.yaml", target="World").replace(
        "name: helloworld-go", "name: broken", 1
    )
    bad = bad.replace(
        "spec:\n      containers:", "spec:\n      containerConcurrency: -1\n      containers:", 1
    )
    assert "containerConcurrency: -1" in bad
    out = cluster.kubectl("apply", "-f", "-", stdin=bad, check=False)
    assert 'admission webhook "validation.webhook.serving.knative.dev" denied the request' in out
    assert "spec.template.spec.containerConcurrency: " in out
    assert cluster.kubectl("get", "ksvc", "broken", check=False).find("NotFound") >= 0


def test_the_controller_writes_events(cluster: Cluster) -> None:
    events = cluster.get("events", "-n", "default")["items"]
    seen = {(e["involvedObject"]["kind"], e["reason"]) for e in events}
    assert ("Service", "Created") in seen  # its Configuration and Route
    assert ("Configuration", "Created") in seen  # the Revision
    assert ("Revision", "RevisionReady") in seen
    assert ("Configuration", "ConfigurationReady") in seen
    for event in events:
        assert event["source"]["component"] == "controller"


def test_scale_to_zero_and_back(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", str(REPO / "examples" / "config-autoscaler-fast.yaml"))
    wait_until(
        lambda: not revision_pods(cluster, "helloworld-go"),
        within=90,
        what="the idle revision scaled to zero",
    )
    assert (
        cluster.get("deployment", "-n", "default", "helloworld-go-00001-deployment")["spec"][
            "replicas"
        ]
        == 0
    )
    # the first request wakes it through the activator and is not lost; meanwhile
    # benchmarks/kubeready.py times the new pod's ports (figures read, never asserted)
    seen = {p["metadata"]["name"] for p in cluster.get("pods", "-n", "default")["items"]}
    row = cold_round(cluster, seen, service="helloworld-go", host=HOST)
    assert (row["status"], row["body"]) == (200, "Hello World!")
    assert {"queue_listening_ms", "app_listening_ms", "queue_ready_ms"} <= row.keys()
    assert revision_pods(cluster, "helloworld-go")


def test_traffic_split_with_tags(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=manifest("hello.yaml"))
    cluster.kubectl("wait", "ksvc", "hello", "--for=condition=Ready", "--timeout=90s")
    cluster.kubectl("apply", "-f", "-", stdin=manifest("traffic-split.yaml"))
    wait_until(
        lambda: (
            len(cluster.get("ksvc", "hello")["status"].get("traffic") or ()) == 3
            and cluster.get("ksvc", "hello")["status"].get("latestReadyRevisionName")
            == "hello-00002"
        ),
        within=90,
        what="the split is in the ksvc's status",
    )
    cluster.kubectl("wait", "ksvc", "hello", "--for=condition=Ready", "--timeout=90s")
    counts = collections.Counter(cluster.curl("hello.default.example.com")[1] for _ in range(100))
    assert set(counts) == {"Hello World!", "Hello Knative!"}, counts
    # 20 % of 100: a binomial's 99.99 % bounds are about 5..38
    assert 5 <= counts["Hello World!"] <= 38, counts
    assert cluster.curl("current-hello.default.example.com") == (200, "Hello World!")
    assert cluster.curl("latest-hello.default.example.com") == (200, "Hello Knative!")


def test_config_domain(cluster: Cluster) -> None:
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        stdin=(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-domain\n"
            f'  namespace: {SYSTEM}\ndata:\n  apps.example.org: ""\n'
        ),
    )
    wait_until(
        lambda: (
            cluster.get("ksvc", "helloworld-go")["status"].get("url")
            == "http://helloworld-go.default.apps.example.org"
        ),
        within=60,
        what="the ksvc's URL follows config-domain",
    )
    assert cluster.curl("helloworld-go.default.apps.example.org") == (200, "Hello World!")
    assert cluster.curl(HOST)[0] == 404


def test_namespace_users_with_edit_write_ksvcs_and_with_view_only_read(cluster: Cluster) -> None:
    """The built-in edit and view roles, bound in a namespace, reach Knative Services
    through the chart's aggregated ClusterRoles (``kubectl --as``: the admin impersonates)."""
    for user, role in (("dev", "edit"), ("auditor", "view")):
        cluster.kubectl(
            "create", "rolebinding", f"{user}-{role}", f"--clusterrole={role}", f"--user={user}"
        )
    ksvc = manifest("hello.yaml").replace("name: hello", "name: by-dev", 1)
    applied = cluster.kubectl("--as=dev", "apply", "-f", "-", stdin=ksvc)
    assert "service.serving.knative.dev/by-dev created" in applied
    created = cluster.get("ksvc", "by-dev")["metadata"]["annotations"]
    assert created["serving.knative.dev/creator"] == "dev"
    assert "by-dev" in cluster.kubectl("--as=auditor", "get", "ksvc")
    refused = cluster.kubectl("--as=auditor", "delete", "ksvc", "by-dev", check=False)
    assert (
        'User "auditor" cannot delete resource "services" in API group "serving.knative.dev"'
        in (refused)
    )
    assert 'User "dev" cannot' in cluster.kubectl(
        "--as=dev", "get", "ksvc", "-n", SYSTEM, check=False
    )
    cluster.kubectl("--as=dev", "delete", "ksvc", "by-dev")
    # the two refusals are this test's; any other 403 still fails it
    take_denials(cluster, {("auditor", "delete", "services"), ("dev", "list", "services")})
    assert_no_denials(cluster)


def take_denials(cluster: Cluster, expected: set[tuple[str, str, str]]) -> None:
    """Check that the API server refused each (user, verb, resource) of ``expected``, and
    take those refusals out of its log (the components' 403s stay and fail the test)."""
    log = cluster.directory / "forbidden.jsonl"
    denials = cluster.forbidden()
    mine = {(d["user"], d["verb"], d["resource"]) for d in denials} & expected
    assert mine == expected, f"not refused: {expected - mine}"
    rest = [d for d in denials if (d["user"], d["verb"], d["resource"]) not in expected]
    log.write_text("".join(json.dumps(d) + "\n" for d in rest))


def test_request_logs_from_config_observability(cluster: Cluster) -> None:
    """config-observability reaches the queue-proxies in OBSERVABILITY_CONFIG (the pods
    roll, as Knative's) and their request log lines come out on the container's stdout."""
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        stdin=(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-observability\n"
            f"  namespace: {SYSTEM}\ndata:\n"
            '  logging.enable-request-log: "true"\n'
            "  logging.request-log-template: 'reqlog {{.Request.Method}} {{.Request.Host}}"
            "{{.Request.URL}} {{.Response.Code}} {{.Revision.Name}}'\n"
        ),
    )
    host = "helloworld-go.default.apps.example.org"

    def logged() -> bool:
        cluster.curl(host, path="/?logged")
        return any(
            "reqlog GET " + host + "/?logged 200 helloworld-go-" in log.read_text(errors="replace")
            for log in (cluster.directory / "pods").glob("default_helloworld-go-*/queue-proxy.log")
        )

    wait_until(logged, within=90, what="a request log line from the rolled queue-proxy")

    def settled() -> bool:
        # every revision's roll over: the tests after this one (the uninstall) start from
        # pods that are running, not from pods deleted within a second of their start (the
        # test cluster's node agent can then keep a user container for the whole grace
        # period, docs/test-cluster.md)
        deployments = cluster.get("deployments", "-n", "default")["items"]
        pods = cluster.get("pods", "-n", "default")["items"]
        rolled = all(
            (d.get("status") or {}).get("updatedReplicas", 0) == d["spec"].get("replicas", 1)
            and (d.get("status") or {}).get("replicas", 0) == d["spec"].get("replicas", 1)
            and (d.get("status") or {}).get("readyReplicas", 0) == d["spec"].get("replicas", 1)
            for d in deployments
        )
        return rolled and not any(p["metadata"].get("deletionTimestamp") for p in pods)

    wait_until(settled, within=120, what="the revisions' pods rolled and ready")


def test_uninstall(cluster: Cluster, tmp_path: Path) -> None:
    cluster.kubectl("delete", "ksvc", "--all", "-A")

    def left() -> str:
        pods = cluster.get("pods", "-n", "default")["items"]
        return "; ".join(
            f"{p['metadata']['name']} deleting={p['metadata'].get('deletionTimestamp')} "
            f"finalizers={p['metadata'].get('finalizers')} phase={p.get('status', {}).get('phase')} "
            f"owners={[o['name'] for o in p['metadata'].get('ownerReferences', [])]}"
            for p in pods
        )

    try:
        wait_until(
            lambda: not cluster.get("pods", "-n", "default")["items"],
            within=120,
            what="the revisions' pods are gone",
        )
    except AssertionError as e:
        raise AssertionError(f"{e}; left: {left()}") from None
    assert_no_denials(cluster)
    # helm deletes the RBAC objects together with the Deployments: the components' last
    # requests while they stop (releasing their Leases) may be denied, as on a cluster
    cluster.denials_expected = True
    cluster.helm("uninstall", "zeroserve", "-n", SYSTEM)
    wait_until(
        lambda: not cluster.get("pods", "-n", SYSTEM)["items"],
        within=120,
        what="the components' pods are gone",
    )
    # the CRDs are kept on purpose (helm.sh/resource-policy: keep)
    assert "services.serving.knative.dev" in cluster.kubectl("get", "crd", "-o", "name")


# What the walkthrough does not make a component do, though its code can (each checked
# against the code: controller/writes.py, controller/planner.py, zeroserve/kube/events.py).
# A verb listed here may still happen (the re-reads after a 409 do, by chance).
REREAD_AFTER_CONFLICT = {
    (group, resource, "get")
    for group, resource in (
        ("serving.knative.dev", "configurations"),
        ("serving.knative.dev", "routes"),
        ("apps", "deployments"),
        ("", "services"),
        ("networking.istio.io", "virtualservices"),
        ("networking.k8s.io", "networkpolicies"),
    )
}
NOT_IN_THE_WALKTHROUGH: dict[str, set[tuple[str, str, str]]] = {
    "activator": set(),
    "autoscaler": set(),
    "controller": REREAD_AFTER_CONFLICT
    | {
        # DomainMappings: their finalizer, status, claim (tests/controller/)
        ("serving.knative.dev", "domainmappings", "patch"),
        ("serving.knative.dev", "domainmappings/status", "patch"),
        ("networking.internal.knative.dev", "clusterdomainclaims", "create"),
        ("networking.internal.knative.dev", "clusterdomainclaims", "delete"),
        # an admission check (blockOwnerDeletion), not a call; the test cluster has no
        # OwnerReferencesPermissionEnforcement
        *(
            ("serving.knative.dev", f"{kind}/finalizers", "update")
            for kind in ("services", "configurations", "revisions", "routes", "domainmappings")
        ),
        # a removed tag's placeholder Service and VirtualService, a retired revision (the
        # walkthrough removes no tag and retires none: config-gc keeps them for hours)
        ("", "services", "delete"),
        ("networking.istio.io", "virtualservices", "delete"),
        ("serving.knative.dev", "revisions", "delete"),
        # a placeholder or private Service, or a NetworkPolicy, rendered anew (a chart
        # upgrade that changes them)
        ("", "services", "update"),
        ("networking.k8s.io", "networkpolicies", "update"),
        # an Event repeated (the count of the same reason on the same object)
        ("", "events", "patch"),
    },
}


def test_every_granted_verb_is_used_and_every_used_one_granted(cluster: Cluster) -> None:
    """The chart's rules against the API server's audit of what each component called
    during the walkthrough (tests/cluster: ``audit.jsonl``, (user, verb, group,
    resource) once each); so a verb the code stops using, or starts using, shows here."""
    audit = [
        json.loads(line) for line in (cluster.directory / "audit.jsonl").read_text().splitlines()
    ]
    objects = render(str(HELM), sets=["controller.replicas=2"])
    problems = []
    for account, unexercised in NOT_IN_THE_WALKTHROUGH.items():
        user = f"system:serviceaccount:{SYSTEM}:{account}"
        used = {(a["group"], a["resource"], a["verb"]) for a in audit if a["user"] == user}
        granted = {(g[1], g[2], g[4]) for g in grants_of(objects, account)}
        problems += [f"{account} used {u}, not granted" for u in sorted(used - granted)]
        problems += [
            f"{account} granted {g}, never used" for g in sorted(granted - used - unexercised)
        ]
        problems += [
            f"{account}: {g} is listed as not in the walkthrough but not granted"
            for g in sorted(unexercised - granted)
        ]
    assert problems == []
