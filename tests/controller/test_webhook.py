"""The admission webhook (controller/webhook.py): defaulting and validation as pure
decisions, its certificate in the Secret, and the whole path over HTTPS: the fake API
server calls it from the chart's webhook configurations, as kube-apiserver would."""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from controller.webhook import (
    CA_CERT,
    CREATOR,
    DEFAULTING_PATH,
    LAST_MODIFIER,
    MUTATING_NAME,
    SERVER_CERT,
    VALIDATING_NAME,
    VALIDATION_PATH,
    Certificates,
    WebhookServer,
    defaulted,
    json_patch,
    problems,
    review,
)
from tests.chart.helm import find_tool, render
from tests.fakes.kubeapi.admission import ADMISSION_TYPES, Admission
from tests.fakes.kubeapi.fakeapi import FakeKubeAPI
from tests.fakes.kubeapi.patches import json_patch as apply_json_patch
from zeroserve.api.configs import Configs
from zeroserve.kube import KubeClient, connect
from zeroserve.kube.certs import not_after

from .helpers import namespace

NS = "knative-serving"
CONFIGS = Configs()
HELLO = yaml.safe_load(
    """
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: hello, namespace: default}
spec:
  template:
    spec:
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
          env: [{name: TARGET, value: World}]
"""
)


def service(**spec: Any) -> dict[str, Any]:
    obj = json.loads(json.dumps(HELLO))
    obj["spec"]["template"]["spec"].update(spec)
    return obj


# ----- defaulting ------------------------------------------------------------------------


def test_defaulting_fills_config_defaults_traffic_and_the_creator() -> None:
    new = defaulted(service(), None, "alice", CONFIGS)
    spec = new["spec"]["template"]["spec"]
    assert spec["timeoutSeconds"] == 300
    assert spec["containerConcurrency"] == 0
    assert spec["containers"][0]["name"] == "user-container"
    assert "idleTimeoutSeconds" not in spec and "responseStartTimeoutSeconds" not in spec
    assert new["spec"]["traffic"] == [{"latestRevision": True, "percent": 100}]
    assert new["metadata"]["annotations"] == {CREATOR: "alice", LAST_MODIFIER: "alice"}


def test_defaulting_keeps_what_the_user_set_and_follows_config_defaults() -> None:
    configs = Configs().with_config_map(
        "config-defaults",
        {
            "revision-timeout-seconds": "120",
            "container-concurrency": "5",
            "revision-idle-timeout-seconds": "60",
        },
        default_domain="example.com",
    )
    obj = service(timeoutSeconds=30)
    obj["spec"]["traffic"] = [{"revisionName": "hello-00001", "percent": 100}]
    new = defaulted(obj, None, "alice", configs)
    spec = new["spec"]["template"]["spec"]
    assert spec["timeoutSeconds"] == 30
    assert spec["containerConcurrency"] == 5
    # an idle timeout only below the revision's timeout (revision_defaults.go)
    assert "idleTimeoutSeconds" not in spec
    assert new["spec"]["traffic"] == [
        {"revisionName": "hello-00001", "percent": 100, "latestRevision": False}
    ]
    assert (
        defaulted(service(), None, "a", configs)["spec"]["template"]["spec"]["idleTimeoutSeconds"]
        == 60
    )


def test_an_update_changes_the_last_modifier_only_with_the_spec() -> None:
    created = defaulted(service(), None, "alice", CONFIGS)
    relabelled = json.loads(json.dumps(created))
    relabelled["metadata"]["labels"] = {"team": "a"}
    same = defaulted(relabelled, created, "bob", CONFIGS)
    assert same["metadata"]["annotations"] == {CREATOR: "alice", LAST_MODIFIER: "alice"}
    changed = json.loads(json.dumps(created))
    changed["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "Bob"
    changed["metadata"]["annotations"][CREATOR] = "mallory"  # immutable: put back
    after = defaulted(changed, created, "bob", CONFIGS)
    assert after["metadata"]["annotations"] == {CREATOR: "alice", LAST_MODIFIER: "bob"}


def test_objects_a_service_owns_get_no_user_annotations() -> None:
    config = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Configuration",
        "metadata": {
            "name": "hello",
            "namespace": "default",
            "ownerReferences": [{"kind": "Service", "name": "hello", "controller": True}],
        },
        "spec": {"template": HELLO["spec"]["template"]},
    }
    new = defaulted(config, None, "system:serviceaccount:knative-serving:controller", CONFIGS)
    assert "annotations" not in new["metadata"]
    assert new["spec"]["template"]["spec"]["timeoutSeconds"] == 300


def test_the_json_patch_turns_the_object_into_the_defaulted_one() -> None:
    obj = service()
    obj["metadata"]["annotations"] = {"a/b~c": "x"}
    new = defaulted(obj, None, "alice", CONFIGS)
    assert apply_json_patch(obj, json_patch(obj, new)) == new
    assert json_patch(new, new) == []


# ----- AdmissionReview -------------------------------------------------------------------


def request(obj: dict[str, Any], operation: str = "CREATE", old: Any = None) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u-1",
            "operation": operation,
            "object": obj,
            "oldObject": old,
            "userInfo": {"username": "alice"},
        },
    }


def test_validation_refuses_with_the_field_path_of_zeroserve_apply() -> None:
    bad = service(containerConcurrency=-1)
    bad["spec"]["traffic"] = [{"latestRevision": True, "percent": 90}]
    answer = review(VALIDATION_PATH, request(bad), CONFIGS)["response"]
    assert answer["uid"] == "u-1" and answer["allowed"] is False
    message = answer["status"]["message"]
    assert message.startswith("validation failed: ")
    assert "spec.template.spec.containerConcurrency: " in message
    assert "spec.traffic: " in message
    assert answer["status"]["code"] == 400
    good = review(VALIDATION_PATH, request(service()), CONFIGS)["response"]
    assert good == {"uid": "u-1", "allowed": True}


def test_the_defaulting_answer_is_a_json_patch() -> None:
    answer = review(DEFAULTING_PATH, request(service()), CONFIGS)["response"]
    assert answer["allowed"] is True and answer["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(answer["patch"]))
    assert apply_json_patch(service(), ops) == defaulted(service(), None, "alice", CONFIGS)
    with pytest.raises(ValueError):
        review(DEFAULTING_PATH, {"request": {}}, CONFIGS)


# ----- the certificate and the whole path ------------------------------------------------


def chart_webhook_objects() -> list[dict[str, Any]]:
    helm = find_tool("helm")
    if helm is None:
        pytest.skip("helm missing (make tools)")
    objects = render(helm, sets=[])
    return [
        o
        for o in objects
        if o["kind"] in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
        or (o["kind"] == "Secret" and o["metadata"]["name"] == "webhook-certs")
    ]


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[FakeKubeAPI]:
    server = FakeKubeAPI()
    for rt in ADMISSION_TYPES:
        server.registry.register(rt)
    server.put(namespace(NS))
    for obj in chart_webhook_objects():
        server.put(obj)
    async with server:
        yield server


@pytest.fixture
async def client(api: FakeKubeAPI, tmp_path: Path) -> AsyncIterator[KubeClient]:
    kube = await connect(str(api.write_kubeconfig(tmp_path / "kubeconfig")), request_timeout=5)
    try:
        yield kube
    finally:
        await kube.close()


def ca_bundles(api: FakeKubeAPI) -> list[str]:
    return [
        hook["clientConfig"].get("caBundle", "")
        for plural, name in (
            ("mutatingwebhookconfigurations", MUTATING_NAME),
            ("validatingwebhookconfigurations", VALIDATING_NAME),
        )
        for hook in (api.get(plural, None, name) or {})["webhooks"]
    ]


@pytest.mark.process
async def test_the_certificate_is_made_once_trusted_and_renewed_before_it_expires(
    api: FakeKubeAPI, client: KubeClient
) -> None:
    certs = Certificates(client, NS)
    served = await certs.ensure()
    secret = api.get("secrets", NS, "webhook-certs")
    assert secret is not None
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    assert data[SERVER_CERT] == served.pair.cert_pem
    assert ca_bundles(api) == [base64.b64encode(data[CA_CERT]).decode()] * 2
    lifetime = not_after(data[SERVER_CERT]) - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(days=6) < lifetime <= datetime.timedelta(days=7)
    # another replica reads the same certificate
    other = Certificates(client, NS)
    assert (await other.ensure()).pair == served.pair
    # six and a half days later it is renewed; the old CA stays trusted meanwhile
    later = Certificates(
        client,
        NS,
        now=lambda: datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=6, hours=12),
    )
    renewed = await later.ensure()
    assert renewed.pair != served.pair
    assert served.ca_bundle in renewed.ca_bundle and renewed.ca_bundle != served.ca_bundle
    assert ca_bundles(api) == [base64.b64encode(renewed.ca_bundle).decode()] * 2
    certs.close(), other.close(), later.close()


@pytest.mark.process
async def test_a_missing_secret_is_a_clear_error(api: FakeKubeAPI, client: KubeClient) -> None:
    api.delete("secrets", NS, "webhook-certs")
    with pytest.raises(Exception, match="webhook-certs does not exist"):
        await Certificates(client, NS).ensure()


async def post(api: FakeKubeAPI, obj: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    url = f"{api.url}/apis/serving.knative.dev/v1/namespaces/default/services"
    async with aiohttp.ClientSession() as session, session.post(url, json=obj) as response:
        return response.status, await response.json()


@pytest.mark.process
async def test_the_api_server_calls_the_webhook_over_https(
    api: FakeKubeAPI, client: KubeClient
) -> None:
    api.put(namespace("default"))
    server = WebhookServer(Certificates(client, NS), lambda: CONFIGS, host="127.0.0.1", port=0)
    await server.start()
    api.admission = Admission(api.list, api.get, lambda host, port: ("127.0.0.1", server.port))
    try:
        assert server.ready
        status, body = await post(api, service(containerConcurrency=-1))
        assert status == 400, body["message"]
        assert body["message"].startswith(
            'admission webhook "validation.webhook.serving.knative.dev" denied the request: '
            "validation failed: spec.template.spec.containerConcurrency: "
        )
        assert api.get("services.serving.knative.dev", "default", "hello") is None
        status, created = await post(api, service())
        assert status == 201, created
        # the fake's admin user is "admin"
        assert created["metadata"]["annotations"] == {CREATOR: "admin", LAST_MODIFIER: "admin"}
        assert created["spec"]["template"]["spec"]["timeoutSeconds"] == 300
        assert created["spec"]["traffic"] == [{"latestRevision": True, "percent": 100}]
    finally:
        await server.stop()
    # failurePolicy: Fail: with the webhook gone, writes are refused, not let through
    status, body = await post(api, {**service(), "metadata": {"name": "b", "namespace": "default"}})
    assert status == 500
    assert body["message"].startswith(
        'Internal error occurred: failed calling webhook "webhook.serving.knative.dev": '
        'failed to call webhook: Post "https://webhook.knative-serving.svc:443/defaulting?timeout=10s"'
    )


def test_defaulting_applies_secure_pod_defaults_and_validation_accepts_them() -> None:
    configs = Configs().with_config_map(
        "config-features", {"secure-pod-defaults": "Enabled"}, default_domain="example.com"
    )
    obj = service(containers=[{"image": "x", "ports": [{"containerPort": 80}]}])
    new = defaulted(obj, None, "alice", configs)
    assert new["spec"]["template"]["spec"]["containers"][0]["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "seccompProfile": {"type": "RuntimeDefault"},
        "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
        "runAsNonRoot": True,
    }
    assert problems(new, configs) == ""
    # off (the default): the template is left without a security context
    plain = defaulted(obj, None, "alice", CONFIGS)
    assert "securityContext" not in plain["spec"]["template"]["spec"]["containers"][0]
