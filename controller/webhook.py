"""The admission webhook, served by every controller replica (docs/kubernetes.md).

What Knative's ``webhook`` Deployment does (``cmd/webhook/main.go``), for the objects
users write: Services, Configurations, Routes and DomainMappings.

- ``/defaulting`` (the MutatingWebhookConfiguration ``webhook.serving.knative.dev``):
  ``config-defaults`` into the revision template as Knative's ``RevisionSpec.SetDefaults``
  does (``pkg/apis/serving/v1/revision_defaults.go``: timeoutSeconds, idle and
  response-start timeouts, containerConcurrency, the user container's name, and the
  containers' security contexts ``config-features`` ``secure-pod-defaults`` asks for:
  ``zeroserve.api.securepod``), a Service's
  or Route's traffic defaults (all to the latest revision; ``latestRevision`` filled in),
  and the ``serving.knative.dev/creator`` / ``lastModifier`` annotations from the
  request's user (``pkg/apis/serving/metadata_validation.go`` SetUserInfo: both on
  create, lastModifier when the spec changes; not on objects a Service owns).
- ``/resource-validation`` (the ValidatingWebhookConfiguration
  ``validation.webhook.serving.knative.dev``): the rules ``zeroserve apply`` checks,
  with the same field paths and messages (``zeroserve.api.validate``), so that ``kubectl
  apply`` of a bad Service fails at once instead of turning ``Ready=False`` later.

Its serving certificate is its own (:class:`Certificates`): a CA and a certificate for
``webhook.<namespace>.svc`` in the Secret ``webhook-certs`` (the keys Knative's webhook
uses), made when missing, renewed a day before they expire, and the CA put into both
configurations' ``caBundle``; every replica reloads the Secret, so a certificate
another replica rotated is served within ``CHECK_INTERVAL``. During a rotation the
bundle holds the old CA too, so a replica still on the old certificate stays trusted.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import datetime
import json
import logging
import os
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from controller.meta import user_object
from controller.snapshot import problems_text
from zeroserve.api.configs import Configs
from zeroserve.api.parse import parse_document
from zeroserve.api.securepod import secure_pod_spec
from zeroserve.api.validate import validate
from zeroserve.knative import CREATOR_ANNOTATION, LAST_MODIFIER_ANNOTATION
from zeroserve.kube import Conflict, KubeClient, KubeError, NotFound, ResourceRef
from zeroserve.kube.certs import Pair, make_ca, not_after, serving_cert

log = logging.getLogger("controller.webhook")

DEFAULTING_PATH = "/defaulting"
VALIDATION_PATH = "/resource-validation"
MUTATING_NAME = "webhook.serving.knative.dev"
VALIDATING_NAME = "validation.webhook.serving.knative.dev"
CREATOR = CREATOR_ANNOTATION
LAST_MODIFIER = LAST_MODIFIER_ANNOTATION
SERVER_KEY, SERVER_CERT, CA_CERT = "server-key.pem", "server-cert.pem", "ca-cert.pem"
"""The Secret's keys, as Knative's webhook names them."""
LIFETIME = datetime.timedelta(days=7)
RENEW_BEFORE = datetime.timedelta(days=1)
CHECK_INTERVAL = 30.0
"""Seconds between looks at the Secret and the configurations' caBundle."""

SECRETS = ResourceRef("", "v1", "secrets")
MUTATING_CONFIGS = ResourceRef(
    "admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", namespaced=False
)
VALIDATING_CONFIGS = ResourceRef(
    "admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", namespaced=False
)
USER_KINDS = ("Service", "Configuration", "Route")


# ----- defaulting ------------------------------------------------------------------------


def _owned(obj: dict[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("ownerReferences"))


def default_template(spec: dict[str, Any], configs: Configs) -> None:
    """``RevisionSpec.SetDefaults`` on ``spec.template.spec`` (in place), the secure
    pod defaults last, as Knative applies them after the containers are named."""
    d = configs.defaults
    timeout = spec.get("timeoutSeconds")
    if timeout is None or timeout == 0:
        spec["timeoutSeconds"] = timeout = d.revision_timeout_seconds
    if isinstance(timeout, int) and not isinstance(timeout, bool):  # else validation says
        idle = d.revision_idle_timeout_seconds
        if "idleTimeoutSeconds" not in spec and idle and idle < timeout:
            spec["idleTimeoutSeconds"] = idle
        start = d.revision_response_start_timeout_seconds
        if "responseStartTimeoutSeconds" not in spec and start and start < timeout:
            spec["responseStartTimeoutSeconds"] = start
    if "containerConcurrency" not in spec:
        spec["containerConcurrency"] = d.container_concurrency
    containers = spec.get("containers")
    if isinstance(containers, list):
        taken = {c.get("name") for c in containers if isinstance(c, dict)}
        unnamed = [c for c in containers if isinstance(c, dict) and not c.get("name")]
        for index, container in enumerate(unnamed):
            name = d.container_name if len(containers) == 1 else f"{d.container_name}-{index}"
            while name in taken:
                name += "-x"
            container["name"] = name
            taken.add(name)
    secure_pod_spec(spec, configs.features.secure_pod_defaults())


def default_traffic(spec: dict[str, Any], *, service: bool) -> None:
    """A Service's or Route's traffic: all to the latest revision when none is given
    (a Service only), and each target's ``latestRevision`` said (``route_defaults.go``)."""
    traffic = spec.get("traffic")
    if service and not traffic:
        spec["traffic"] = [{"latestRevision": True, "percent": 100}]
        return
    for target in traffic if isinstance(traffic, list) else []:
        if isinstance(target, dict) and "latestRevision" not in target:
            target["latestRevision"] = not target.get("revisionName")


def defaulted(
    obj: dict[str, Any],
    old: dict[str, Any] | None,
    username: str,
    configs: Configs,
) -> dict[str, Any]:
    """``obj`` as the defaulting webhook leaves it."""
    new = copy.deepcopy(obj)
    kind = new.get("kind")
    spec = new.get("spec")
    if not isinstance(spec, dict):
        return new
    if kind in ("Service", "Configuration"):
        template = spec.get("template")
        if isinstance(template, dict) and isinstance(template.get("spec"), dict):
            default_template(template["spec"], configs)
    if kind in ("Service", "Route"):
        default_traffic(spec, service=kind == "Service")
    if kind in USER_KINDS and not _owned(new) and username:
        meta = new.setdefault("metadata", {})
        annotations = meta.get("annotations")
        if not isinstance(annotations, dict):
            annotations = meta["annotations"] = {}
        if old is None:
            annotations[CREATOR] = username
            annotations[LAST_MODIFIER] = username
        else:
            old_annotations = (old.get("metadata") or {}).get("annotations") or {}
            if CREATOR in old_annotations:
                annotations[CREATOR] = old_annotations[CREATOR]  # it is immutable
            if old.get("spec") != new.get("spec"):
                annotations[LAST_MODIFIER] = username
            elif LAST_MODIFIER in old_annotations:
                annotations[LAST_MODIFIER] = old_annotations[LAST_MODIFIER]
    return new


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def json_patch(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """RFC 6902 operations turning ``old`` into ``new``: one per changed top-level field,
    and per changed metadata field (enough for what defaulting changes)."""
    ops: list[dict[str, Any]] = []
    for key in sorted(set(old) | set(new)):
        if key == "metadata" and isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
            for sub in sorted(set(old[key]) | set(new[key])):
                path = f"/metadata/{_escape(sub)}"
                if sub not in new[key]:
                    ops.append({"op": "remove", "path": path})
                elif sub not in old[key]:
                    ops.append({"op": "add", "path": path, "value": new[key][sub]})
                elif old[key][sub] != new[key][sub]:
                    ops.append({"op": "replace", "path": path, "value": new[key][sub]})
            continue
        path = f"/{_escape(key)}"
        if key not in new:
            ops.append({"op": "remove", "path": path})
        elif key not in old:
            ops.append({"op": "add", "path": path, "value": new[key]})
        elif old[key] != new[key]:
            ops.append({"op": "replace", "path": path, "value": new[key]})
    return ops


# ----- validation ------------------------------------------------------------------------


def problems(obj: dict[str, Any], configs: Configs) -> str:
    """What the validating webhook refuses ``obj`` for ("" when nothing): the rules of
    ``zeroserve apply`` for the cluster, ``path: rule; path: rule``."""
    parsed = parse_document(user_object(obj), "")
    if isinstance(parsed, list):
        return problems_text(parsed)
    return problems_text(validate(parsed, configs, local=False))


# ----- AdmissionReview -------------------------------------------------------------------


def review(path: str, body: Any, configs: Configs) -> dict[str, Any]:
    """The AdmissionReview answering ``body`` (admission.k8s.io/v1) on ``path``."""
    request = body.get("request") if isinstance(body, dict) else None
    if not isinstance(request, dict) or not request.get("uid"):
        raise ValueError("the body is not an AdmissionReview with a request")
    response: dict[str, Any] = {"uid": request["uid"], "allowed": True}
    obj = request.get("object")
    if isinstance(obj, dict) and request.get("operation") in ("CREATE", "UPDATE"):
        old = request.get("oldObject") if request.get("operation") == "UPDATE" else None
        if path == DEFAULTING_PATH:
            username = str((request.get("userInfo") or {}).get("username") or "")
            ops = json_patch(obj, defaulted(obj, old, username, configs))
            if ops:
                response["patchType"] = "JSONPatch"
                response["patch"] = base64.b64encode(json.dumps(ops).encode()).decode()
        elif path == VALIDATION_PATH:
            found = problems(obj, configs)
            if found:
                response["allowed"] = False
                response["status"] = {
                    "status": "Failure",
                    "code": 400,
                    "reason": "BadRequest",
                    "message": f"validation failed: {found}",
                }
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


# ----- the certificate -------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    """The certificate being served and the CA bundle that trusts it."""

    pair: Pair
    ca_bundle: bytes
    expires: datetime.datetime


def _pem_blocks(data: bytes) -> list[bytes]:
    marker = b"-----END CERTIFICATE-----"
    return [
        part.strip() + b"\n" + marker + b"\n" for part in data.split(marker)[:-1] if part.strip()
    ]


class Certificates:
    """The webhook's serving certificate in the Secret ``secret`` (see module docstring)."""

    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        *,
        service: str = "webhook",
        secret: str = "webhook-certs",
        configurations: tuple[str, str] = (MUTATING_NAME, VALIDATING_NAME),
        now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.service = service
        self.secret = secret
        self.configurations = configurations
        self.now = now
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.served: Served | None = None
        self._dir = tempfile.mkdtemp(prefix="zeroserve-webhook-")

    @property
    def names(self) -> list[str]:
        ns = self.namespace
        return [self.service, f"{self.service}.{ns}", f"{self.service}.{ns}.svc"]

    def _make(self, previous_ca: bytes) -> dict[str, bytes]:
        ca, ca_key = make_ca(f"{self.service}.{self.namespace} webhook CA", lifetime=LIFETIME)
        pair = serving_cert(
            ca, ca_key, f"{self.service}.{self.namespace}.svc", self.names, [], lifetime=LIFETIME
        )
        bundle = ca.cert_pem
        for block in _pem_blocks(previous_ca):  # still trusted while replicas switch over
            with contextlib.suppress(ValueError):
                if not_after(block) > self.now():
                    bundle += block
        return {SERVER_KEY: pair.key_pem, SERVER_CERT: pair.cert_pem, CA_CERT: bundle}

    def _usable(self, data: dict[str, bytes]) -> datetime.datetime | None:
        if not all(data.get(k) for k in (SERVER_KEY, SERVER_CERT, CA_CERT)):
            return None
        try:
            expires = not_after(data[SERVER_CERT])
        except ValueError:
            return None
        return expires if expires - RENEW_BEFORE > self.now() else None

    async def ensure(self) -> Served:
        """Read the Secret (renewing its certificate when missing or about to expire),
        serve what it holds, and put its CA into the configurations' caBundle."""
        for _ in range(5):
            try:
                secret = await self.client.get(SECRETS, self.namespace, self.secret)
            except NotFound:
                raise KubeError(
                    f"the webhook's Secret {self.namespace}/{self.secret} does not exist "
                    "(the chart makes it; the controller only fills it)"
                ) from None
            raw = secret.get("data") or {}
            data = {
                k: base64.b64decode(v)
                for k, v in raw.items()
                if k in (SERVER_KEY, SERVER_CERT, CA_CERT)
            }
            expires = self._usable(data)
            if expires is None:
                data = self._make(data.get(CA_CERT, b""))
                secret["data"] = {
                    **raw,
                    **{k: base64.b64encode(v).decode() for k, v in data.items()},
                }
                try:
                    await self.client.replace(SECRETS, secret)
                except Conflict:
                    continue  # another replica renewed it: use theirs
                log.info(
                    "made the webhook's certificate for %s (Secret %s/%s)",
                    ", ".join(self.names),
                    self.namespace,
                    self.secret,
                )
                expires = not_after(data[SERVER_CERT])
            self._load(Pair(data[SERVER_CERT], data[SERVER_KEY]), data[CA_CERT], expires)
            await self._ca_bundles()
            assert self.served is not None
            return self.served
        raise KubeError(f"Secret {self.namespace}/{self.secret} kept changing under the webhook")

    def _load(self, pair: Pair, bundle: bytes, expires: datetime.datetime) -> None:
        if self.served is not None and self.served.pair == pair and self.served.ca_bundle == bundle:
            return
        cert, key = pair.write(Path(self._dir), "serving")
        # new handshakes use it; connections already open keep theirs
        self.context.load_cert_chain(cert, key)
        self.served = Served(pair, bundle, expires)

    async def _ca_bundles(self) -> None:
        assert self.served is not None
        wanted = base64.b64encode(self.served.ca_bundle).decode()
        for ref, name in zip(
            (MUTATING_CONFIGS, VALIDATING_CONFIGS), self.configurations, strict=True
        ):
            for _ in range(5):
                try:
                    config = await self.client.get(ref, None, name)
                except NotFound:
                    log.warning("no %s %s: nothing to put the webhook's CA into", ref, name)
                    break
                changed = False
                for hook in config.get("webhooks") or []:
                    client_config = hook.setdefault("clientConfig", {})
                    service = client_config.get("service") or {}
                    if (
                        service.get("name") != self.service
                        or service.get("namespace") != self.namespace
                    ):
                        continue
                    if client_config.get("caBundle") != wanted:
                        client_config["caBundle"] = wanted
                        changed = True
                if not changed:
                    break
                try:
                    await self.client.replace(ref, config)
                    log.info("put the webhook's CA into %s %s", ref, name)
                    break
                except Conflict:
                    continue

    def close(self) -> None:
        for name in ("serving.crt", "serving.key"):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self._dir, name))
        with contextlib.suppress(OSError):
            os.rmdir(self._dir)


# ----- the server ------------------------------------------------------------------------


class WebhookServer:
    """HTTPS on ``port`` for the API server's AdmissionReviews; ``ready`` once its
    certificate is served and trusted by the configurations."""

    def __init__(
        self,
        certificates: Certificates,
        configs: Callable[[], Configs],
        *,
        host: str = "0.0.0.0",
        port: int = 8443,
        check_interval: float = CHECK_INTERVAL,
    ) -> None:
        self.certificates = certificates
        self.configs = configs
        self.host = host
        self.port = port
        self.check_interval = check_interval
        self.ready = False
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task[None] | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            answer = review(request.path, body, self.configs())
        except ValueError as exc:
            return web.json_response({"error": f"not an AdmissionReview: {exc}"}, status=400)
        response = answer["response"]
        if not response["allowed"]:
            log.info(
                "refused %s %s: %s",
                (body["request"].get("kind") or {}).get("kind"),
                body["request"].get("name") or "",
                response["status"]["message"],
            )
        return web.json_response(answer)

    async def start(self) -> None:
        """Make or read the certificate, then listen; KubeError when the API refuses."""
        await self.certificates.ensure()
        app = web.Application(client_max_size=8 * 2**20)
        app.router.add_post(DEFAULTING_PATH, self._handle)
        app.router.add_post(VALIDATION_PATH, self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, ssl_context=self.certificates.context)
        await site.start()
        self._runner = runner
        if self.port == 0:
            self.port = runner.addresses[0][1]
        self.ready = True
        self._task = asyncio.create_task(self._keep(), name="webhook certificate")

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self.check_interval)
            try:
                await self.certificates.ensure()
            except KubeError as exc:
                log.warning("checking the webhook's certificate: %s", exc)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.certificates.close()
