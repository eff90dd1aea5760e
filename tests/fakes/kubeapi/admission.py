"""Admission webhooks for the fake API server (off unless a resolver is given).

What kube-apiserver's ``MutatingAdmissionWebhook`` and ``ValidatingAdmissionWebhook``
plugins do (``staging/src/k8s.io/apiserver/pkg/admission/plugin/webhook``): for a create
or update, every webhook of the stored Mutating- then ValidatingWebhookConfigurations
whose rules, namespaceSelector and objectSelector match is sent an ``admission.k8s.io/v1``
AdmissionReview over HTTPS (trusting its ``caBundle``, naming the service by
``<name>.<namespace>.svc``); a mutating webhook's JSONPatch is applied before the next
webhook sees the object; a denial becomes the apiserver's error ("admission webhook
"<name>" denied the request: ..."), and a webhook that cannot be called fails the request
or is skipped as its ``failurePolicy`` says.

Not done: DELETE and CONNECT operations, ``reinvocationPolicy``, ``matchPolicy:
Equivalent`` across API versions, ``matchConditions``, and the apiserver's re-validation
of a mutated object against its schema.
"""

from __future__ import annotations

import base64
import binascii
import json
import ssl
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
from yarl import URL

from . import errors
from .patches import json_patch
from .resources import ResourceType
from .selection import format_label_selector, labels_match, parse_label_selector

Resolver = Callable[[str, int], "tuple[str, int] | None"]
"""(``name.namespace.svc``, port) -> a ready endpoint (host, port), None when none is."""

ADMISSION_TYPES = (
    ResourceType(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfiguration",
        namespaced=False,
    ),
    ResourceType(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfiguration",
        namespaced=False,
    ),
)


def _selector_matches(selector: dict[str, Any] | None, labels: dict[str, Any]) -> bool:
    if not selector:
        return True
    reqs = parse_label_selector(format_label_selector(selector))
    return labels_match(reqs, {"metadata": {"labels": labels}})


def _has(values: list[str] | None, wanted: str) -> bool:
    items = values or []
    return "*" in items or wanted in items


def rule_matches(rule: dict[str, Any], operation: str, rt: ResourceType, subresource: str) -> bool:
    """One of a webhook's ``rules`` (admissionregistration RuleWithOperations)."""
    if not _has(rule.get("operations"), operation):
        return False
    if not _has(rule.get("apiGroups"), rt.group) or not _has(rule.get("apiVersions"), rt.version):
        return False
    scope = rule.get("scope") or "*"
    if scope != "*" and scope != ("Namespaced" if rt.namespaced else "Cluster"):
        return False
    combined = f"{rt.plural}/{subresource}" if subresource else rt.plural
    for resource in rule.get("resources") or []:
        if resource == combined or (resource == "*" and not subresource):
            return True
        if resource == "*/*" or (
            subresource and resource in (f"*/{subresource}", f"{rt.plural}/*")
        ):
            return True
    return False


class Admission:
    """Calls the stored webhook configurations for the fake (see the module docstring).

    ``lister(plural, namespace)`` lists stored objects; ``getter(plural, ns, name)`` gets
    one (for namespaceSelector); ``resolve`` finds a webhook service's endpoint."""

    def __init__(
        self,
        lister: Callable[[str, str | None], list[dict[str, Any]]],
        getter: Callable[[str, str | None, str], dict[str, Any] | None],
        resolve: Resolver,
    ) -> None:
        self.lister = lister
        self.getter = getter
        self.resolve = resolve
        self.calls = 0

    def _webhooks(
        self,
        plural: str,
        operation: str,
        rt: ResourceType,
        subresource: str,
        namespace: str | None,
        obj: dict[str, Any],
    ) -> list[dict[str, Any]]:
        found = []
        labels = (obj.get("metadata") or {}).get("labels") or {}
        ns_labels: dict[str, Any] | None = None
        for config in sorted(self.lister(plural, None), key=lambda c: c["metadata"]["name"]):
            for hook in config.get("webhooks") or []:
                if not any(
                    rule_matches(r, operation, rt, subresource) for r in hook.get("rules") or []
                ):
                    continue
                if not _selector_matches(hook.get("objectSelector"), labels):
                    continue
                if namespace and hook.get("namespaceSelector"):
                    if ns_labels is None:
                        ns = self.getter("namespaces", None, namespace) or {}
                        ns_labels = (ns.get("metadata") or {}).get("labels") or {}
                    if not _selector_matches(hook.get("namespaceSelector"), ns_labels):
                        continue
                found.append(hook)
        return found

    def matches(
        self,
        operation: str,
        rt: ResourceType,
        subresource: str,
        namespace: str | None,
        obj: dict[str, Any],
    ) -> bool:
        return any(
            self._webhooks(plural, operation, rt, subresource, namespace, obj)
            for plural in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations")
        )

    async def admit(
        self,
        operation: str,
        rt: ResourceType,
        subresource: str,
        namespace: str | None,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        user: tuple[str, tuple[str, ...]],
        dry_run: bool,
    ) -> dict[str, Any]:
        """The object after the mutating webhooks; raises the apiserver's error when a
        webhook denies it or cannot be called and fails closed."""
        for plural, mutating in (
            ("mutatingwebhookconfigurations", True),
            ("validatingwebhookconfigurations", False),
        ):
            for hook in self._webhooks(plural, operation, rt, subresource, namespace, obj):
                review = {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "request": {
                        "uid": str(uuid.uuid4()),
                        "kind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
                        "resource": {
                            "group": rt.group,
                            "version": rt.version,
                            "resource": rt.plural,
                        },
                        "subResource": subresource or None,
                        "requestKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
                        "requestResource": {
                            "group": rt.group,
                            "version": rt.version,
                            "resource": rt.plural,
                        },
                        "name": (obj.get("metadata") or {}).get("name", ""),
                        "namespace": namespace or "",
                        "operation": operation,
                        "userInfo": {"username": user[0], "groups": list(user[1])},
                        "object": obj,
                        "oldObject": old,
                        "dryRun": dry_run,
                        "options": {
                            "apiVersion": "meta.k8s.io/v1",
                            "kind": "CreateOptions" if operation == "CREATE" else "UpdateOptions",
                        },
                    },
                }
                response = await self._call(hook, review)
                if response is None:  # failurePolicy: Ignore
                    continue
                if not response.get("allowed"):
                    raise _denied(hook["name"], response.get("status") or {})
                if mutating and response.get("patch"):
                    if response.get("patchType") != "JSONPatch":
                        raise _failed(
                            hook, "unsupported patch type " + str(response.get("patchType"))
                        )
                    try:
                        operations = json.loads(base64.b64decode(response["patch"]))
                    except (ValueError, binascii.Error) as exc:
                        raise _failed(hook, f"the patch is not base64 JSON: {exc}") from None
                    obj = json_patch(obj, operations)
        return obj

    async def _call(self, hook: dict[str, Any], review: dict[str, Any]) -> dict[str, Any] | None:
        self.calls += 1
        config = hook.get("clientConfig") or {}
        timeout = float(hook.get("timeoutSeconds") or 10)
        service = config.get("service")
        try:
            if service is not None:
                host = f"{service['name']}.{service['namespace']}.svc"
                port = int(service.get("port") or 443)
                url = f"https://{host}:{port}{service.get('path') or ''}?timeout={int(timeout)}s"
                endpoint = self.resolve(host, port)
                if endpoint is None:
                    raise _CallError(
                        f'Post "{url}": no endpoints available for service "{service["name"]}"'
                    )
                target = f"https://{endpoint[0]}:{endpoint[1]}{service.get('path') or ''}"
            else:
                url = target = str(config.get("url", ""))
                host = URL(url).host or ""
            context = ssl.create_default_context()
            if config.get("caBundle"):
                context.load_verify_locations(cadata=base64.b64decode(config["caBundle"]).decode())
            try:
                async with (
                    aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
                    session.post(
                        target,
                        json=review,
                        ssl=context,
                        server_hostname=host,
                        headers={"Host": host},
                    ) as reply,
                ):
                    if reply.status != 200:
                        raise _CallError(f"expected response code 200, got {reply.status}")
                    body = await reply.json(content_type=None)
            except TimeoutError:
                raise _CallError(f'Post "{url}": context deadline exceeded') from None
            except (aiohttp.ClientError, OSError, ValueError) as exc:
                raise _CallError(f'Post "{url}": {exc}') from None
            response = (body or {}).get("response") if isinstance(body, dict) else None
            if not isinstance(response, dict):
                raise _CallError("the response has no AdmissionReview response")
            if response.get("uid") != review["request"]["uid"]:
                raise _CallError(
                    f"expected response.uid={review['request']['uid']!r}, "
                    f"got {response.get('uid')!r}"
                )
            return response
        except _CallError as exc:
            if (hook.get("failurePolicy") or "Fail") == "Ignore":
                return None
            raise _failed(hook, str(exc)) from None


class _CallError(Exception):
    pass


def _failed(hook: dict[str, Any], why: str) -> errors.ApiError:
    return errors.ApiError(
        500,
        f'Internal error occurred: failed calling webhook "{hook["name"]}": '
        f"failed to call webhook: {why}",
        "InternalError",
    )


def _denied(name: str, status: dict[str, Any]) -> errors.ApiError:
    """webhookerrors.ToStatusErr: at least 400, the webhook's message behind its name."""
    code = int(status.get("code") or 0)
    code = code if code >= 400 else 400
    denied = f'admission webhook "{name}" denied the request'
    if status.get("message"):
        message = f"{denied}: {status['message']}"
    elif status.get("reason"):
        message = f"{denied}: {status['reason']}"
    else:
        message = f"{denied} without explanation"
    return errors.ApiError(code, message, status.get("reason") or None, status.get("details"))
