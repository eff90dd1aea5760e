"""Authentication and RBAC authorization for the fake API server (off unless asked for).

A real kube-apiserver authenticates every request (here: bearer tokens, either a static
token from the kubeconfig or a service account's JWT), then asks its authorizers whether
the user may do the verb on the resource (kubernetes ``plugin/pkg/auth/authorizer/rbac/
rbac.go`` over the stored Roles, ClusterRoles and their bindings; the rule matching of
``pkg/apis/rbac/v1/evaluation_helpers.go``). A denied request gets 403 with the
apiserver's sentence (``staging/src/k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/
errors.go``), which components log as they would on a cluster.

:class:`Auth` is what :class:`~tests.fakes.kubeapi.fakeapi.FakeKubeAPI` calls: set
``api.auth = Auth(api, tokens={...}, service_account_key=...)``. Every denial is also
appended to :attr:`Auth.denials` (and to ``log_path`` as JSON lines) so that tests can
fail on any 403 a component met.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from zeroserve.local.sandbox.tokens import ISSUER

from .errors import ApiError
from .resources import ResourceType
from .selection import format_label_selector, labels_match, parse_label_selector

RBAC_GROUP = "rbac.authorization.k8s.io"
AUTHENTICATED = "system:authenticated"
MASTERS = "system:masters"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
AGGREGATE_PREFIX = "rbac.authorization.k8s.io/aggregate-to-"
DEFAULT_ISSUER = ISSUER

RBAC_TYPES = (
    ResourceType(RBAC_GROUP, "v1", "roles", "Role", "role"),
    ResourceType(RBAC_GROUP, "v1", "rolebindings", "RoleBinding", "rolebinding"),
    ResourceType(
        RBAC_GROUP,
        "v1",
        "clusterroles",
        "ClusterRole",
        "clusterrole",
        namespaced=False,
    ),
    ResourceType(
        RBAC_GROUP,
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        "clusterrolebinding",
        namespaced=False,
    ),
)
"""The RBAC kinds (not served by the fake unless registered: ``api.registry.register``)."""

# The apiserver's bootstrap policy (plugin/pkg/auth/authorizer/rbac/bootstrappolicy),
# the part clients need: cluster-admin for system:masters, discovery for everyone
# authenticated, and the aggregated admin, edit and view roles for namespace users.
DISCOVERY_URLS = [
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/healthz",
    "/livez",
    "/readyz",
    "/openapi",
    "/openapi/*",
    "/version",
    "/version/",
]


def bootstrap_policy() -> list[dict[str, Any]]:
    """The ClusterRoles and ClusterRoleBindings a fresh cluster has (the subset above)."""

    def binding(name: str, group: str) -> dict[str, Any]:
        return {
            "apiVersion": f"{RBAC_GROUP}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name},
            "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": group}],
        }

    def role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "apiVersion": f"{RBAC_GROUP}/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
            "rules": rules,
        }

    def aggregated(name: str, into: str | None) -> dict[str, Any]:
        obj = role(name, [])
        if into is not None:
            obj["metadata"]["labels"][f"{AGGREGATE_PREFIX}{into}"] = "true"
        obj["aggregationRule"] = {
            "clusterRoleSelectors": [{"matchLabels": {f"{AGGREGATE_PREFIX}{name}": "true"}}]
        }
        return obj

    def aggregating(name: str, to: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
        obj = role(name, rules)
        obj["metadata"]["labels"][f"{AGGREGATE_PREFIX}{to}"] = "true"
        return obj

    core_objects = ["pods", "services", "configmaps"]
    return [
        # The user-facing roles (bootstrappolicy/policy.go): admin, edit and view hold no
        # rules of their own; aggregation fills them. view's rules are part of edit's,
        # edit's of admin's. Their own rules here are a small part of Kubernetes'
        # system:aggregate-to-* roles: a few core kinds.
        aggregated("admin", None),
        aggregated("edit", "admin"),
        aggregated("view", "edit"),
        aggregating(
            "system:aggregate-to-view",
            "view",
            [{"apiGroups": [""], "resources": core_objects, "verbs": ["get", "list", "watch"]}],
        ),
        aggregating(
            "system:aggregate-to-edit",
            "edit",
            [
                {
                    "apiGroups": [""],
                    "resources": core_objects,
                    "verbs": ["create", "delete", "deletecollection", "patch", "update"],
                }
            ],
        ),
        aggregating(
            "system:aggregate-to-admin",
            "admin",
            [
                {
                    "apiGroups": [RBAC_GROUP],
                    "resources": ["rolebindings", "roles"],
                    "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                }
            ],
        ),
        role(
            "cluster-admin",
            [
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                {"nonResourceURLs": ["*"], "verbs": ["*"]},
            ],
        ),
        binding("cluster-admin", MASTERS),
        role("system:discovery", [{"nonResourceURLs": DISCOVERY_URLS, "verbs": ["get"]}]),
        binding("system:discovery", AUTHENTICATED),
    ]


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""


@dataclass(frozen=True)
class Attributes:
    """What a request asks to do (the apiserver's authorizer.Attributes)."""

    verb: str
    path: str
    resource_request: bool = False
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""


def resource_verb(method: str, *, has_name: bool, watch: bool) -> str:
    """The RBAC verb of a resource request (k8s.io/apiserver pkg/endpoints/request/
    requestinfo.go): GET is get, list or watch; DELETE of a collection is deletecollection."""
    if method in ("GET", "HEAD"):
        if watch:
            return "watch"
        return "get" if has_name else "list"
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete" if has_name else "deletecollection"
    return method.lower()


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def service_account_user(namespace: str, name: str) -> User:
    return User(
        f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED),
    )


def verify_service_account_token(
    token: str, key: bytes, *, issuer: str = DEFAULT_ISSUER, now: float | None = None
) -> User | None:
    """The service account a JWT signed with ``key`` (HS256, the test cluster's key; see
    zeroserve/local/sandbox/tokens.py) names, or None when it is not one, is not signed
    with the key, names another issuer or has expired."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header = json.loads(_b64decode(parts[0]))
        claims = json.loads(_b64decode(parts[1]))
        signature = _b64decode(parts[2])
    except (ValueError, binascii.Error):
        return None
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        return None
    expected = hmac.new(key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature) or not isinstance(claims, dict):
        return None
    moment = time.time() if now is None else now
    if claims.get("iss") != issuer or not moment < float(claims.get("exp", 0)):
        return None
    subject = str(claims.get("sub", ""))
    if not subject.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    namespace, _, name = subject[len(SERVICE_ACCOUNT_PREFIX) :].partition(":")
    if not namespace or not name:
        return None
    return service_account_user(namespace, name)


# ----- RBAC rule evaluation (pkg/apis/rbac/v1/evaluation_helpers.go) -------------------


def _has(values: Iterable[str] | None, wanted: str) -> bool:
    items = list(values or ())
    return "*" in items or wanted in items


def _resource_matches(rule_resources: Iterable[str] | None, resource: str, sub: str) -> bool:
    combined = f"{resource}/{sub}" if sub else resource
    for rule in rule_resources or ():
        if rule in ("*", combined):
            return True
        if sub and rule == f"*/{sub}":
            return True
    return False


def _url_matches(rule_urls: Iterable[str] | None, path: str) -> bool:
    for rule in rule_urls or ():
        if rule == "*" or rule == path:
            return True
        if rule.endswith("*") and path.startswith(rule[:-1]):
            return True
    return False


def rule_allows(rule: dict[str, Any], attrs: Attributes) -> bool:
    if not _has(rule.get("verbs"), attrs.verb):
        return False
    if not attrs.resource_request:
        return _url_matches(rule.get("nonResourceURLs"), attrs.path)
    names = rule.get("resourceNames") or []
    return (
        _has(rule.get("apiGroups"), attrs.api_group)
        and _resource_matches(rule.get("resources"), attrs.resource, attrs.subresource)
        and (not names or attrs.name in names)
    )


def _selector_matches(selector: dict[str, Any], obj: dict[str, Any]) -> bool:
    """A metav1.LabelSelector over ``obj``'s labels; the empty selector matches nothing
    here (kube's aggregation controller skips it: it would select every role)."""
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        return False
    return labels_match(parse_label_selector(format_label_selector(selector)), obj)


def cluster_role_rules(
    role: dict[str, Any], every: list[dict[str, Any]], _seen: frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    """The rules ``role`` grants. A ClusterRole with an ``aggregationRule`` has the rules of
    every other ClusterRole its ``clusterRoleSelectors`` match (kube-controller-manager's
    clusterrole-aggregation controller writes them into the role; here they are collected
    when a request is authorized, so a new labelled role counts at once). Aggregated roles
    nest: admin collects edit, which collects view."""
    aggregation = role.get("aggregationRule")
    if not aggregation:
        return list(role.get("rules") or [])
    name = role["metadata"]["name"]
    seen = _seen | {name}
    rules: list[dict[str, Any]] = []
    for other in every:
        other_name = other["metadata"]["name"]
        if other_name in seen:
            continue
        if any(
            _selector_matches(selector, other)
            for selector in aggregation.get("clusterRoleSelectors") or []
        ):
            rules.extend(cluster_role_rules(other, every, seen))
    return rules


def _subject_matches(subject: dict[str, Any], user: User, binding_namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name", "")
    if kind == "User":
        return bool(name == user.name)
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user.name == f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"
    return False


def forbidden(user: User, attrs: Attributes) -> ApiError:
    """The apiserver's 403 (responsewriters.ForbiddenStatusError)."""
    if not attrs.resource_request:
        message = f'forbidden: User "{user.name}" cannot {attrs.verb} path "{attrs.path}"'
        return ApiError(403, message, "Forbidden")
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    scope = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    qualified = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
    subject = f'{qualified} "{attrs.name}"' if attrs.name else qualified
    message = (
        f'{subject} is forbidden: User "{user.name}" cannot {attrs.verb} resource '
        f'"{resource}" in API group "{attrs.api_group}" {scope}'
    )
    details: dict[str, Any] = {"kind": attrs.resource}
    if attrs.name:
        details["name"] = attrs.name
    if attrs.api_group:
        details["group"] = attrs.api_group
    return ApiError(403, message, "Forbidden", details)


@dataclass
class Auth:
    """Bearer-token authentication and RBAC over the objects ``lister`` returns.

    ``lister(plural, namespace)`` lists stored objects (the fake's ``api.list``);
    ``tokens`` maps static tokens to users (the admin's kubeconfig token);
    ``service_account_key`` verifies service account JWTs."""

    lister: Callable[[str, str | None], list[dict[str, Any]]]
    tokens: dict[str, User] = field(default_factory=dict)
    service_account_key: bytes | None = None
    issuer: str = DEFAULT_ISSUER
    log_path: Path | None = None
    denials: list[dict[str, Any]] = field(default_factory=list)
    audit_path: Path | None = None
    """Where each allowed resource request's (user, verb, group, resource) is appended
    as a JSON line, the first time it is seen (see :attr:`audit`)."""
    audit: set[tuple[str, str, str, str]] = field(default_factory=set)
    """(user, verb, apiGroup, resource or resource/subresource) of every allowed resource
    request: what each client really did, to hold its RBAC to."""

    def authenticate(self, authorization: str | None) -> User:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token:
            user = self.tokens.get(token)
            if user is not None:
                return user
            if self.service_account_key is not None:
                account = verify_service_account_token(
                    token, self.service_account_key, issuer=self.issuer
                )
                if account is not None:
                    return account
        raise ApiError(401, "Unauthorized", "Unauthorized")

    def allowed(self, user: User, attrs: Attributes) -> bool:
        for binding in self.lister("clusterrolebindings", None):
            if self._binding_allows(binding, "", user, attrs):
                return True
        if attrs.resource_request and attrs.namespace:
            for binding in self.lister("rolebindings", attrs.namespace):
                if self._binding_allows(binding, attrs.namespace, user, attrs):
                    return True
        return False

    def _binding_allows(
        self, binding: dict[str, Any], namespace: str, user: User, attrs: Attributes
    ) -> bool:
        if not any(_subject_matches(s, user, namespace) for s in binding.get("subjects") or []):
            return False
        ref = binding.get("roleRef") or {}
        if ref.get("kind") == "ClusterRole":
            every = self.lister("clusterroles", None)
            return any(
                rule_allows(rule, attrs)
                for role in every
                if role["metadata"]["name"] == ref.get("name")
                for rule in cluster_role_rules(role, every)
            )
        if ref.get("kind") == "Role" and namespace:
            roles = [
                r
                for r in self.lister("roles", namespace)
                if r["metadata"]["name"] == ref.get("name")
            ]
        else:
            return False
        return any(rule_allows(rule, attrs) for role in roles for rule in role.get("rules") or [])

    def authorize(self, user: User, attrs: Attributes) -> None:
        """Raise the apiserver's 403 unless RBAC allows ``attrs`` to ``user``; a denial
        is recorded in :attr:`denials` and ``log_path``."""
        if self.allowed(user, attrs):
            if attrs.resource_request:
                self._record(user, attrs)
            return
        error = forbidden(user, attrs)
        record = {"user": user.name, **asdict(attrs), "message": error.message}
        self.denials.append(record)
        if self.log_path is not None:
            with self.log_path.open("a") as out:
                out.write(json.dumps(record) + "\n")
        raise error

    def _record(self, user: User, attrs: Attributes) -> None:
        resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
        entry = (user.name, attrs.verb, attrs.api_group, resource)
        if entry in self.audit:
            return
        self.audit.add(entry)
        if self.audit_path is not None:
            with self.audit_path.open("a") as out:
                user_name, verb, group, res = entry
                line = {"user": user_name, "verb": verb, "group": group, "resource": res}
                out.write(json.dumps(line) + "\n")

    def impersonate(self, user: User, name: str | None, groups: list[str]) -> User:
        """The user a request acts as (``kubectl --as NAME --as-group GROUP``: the
        Impersonate-User and Impersonate-Group headers). The authenticated ``user`` needs
        the impersonate verb on each (k8s.io/apiserver pkg/endpoints/filters/
        impersonation.go); the impersonated user is also in system:authenticated."""
        if name is None:
            if groups:
                raise ApiError(
                    400, "Impersonate-Group given without Impersonate-User", "BadRequest"
                )
            return user
        if name.startswith(SERVICE_ACCOUNT_PREFIX):
            # a service account is impersonated as one: its own resource and groups
            namespace, _, account = name[len(SERVICE_ACCOUNT_PREFIX) :].partition(":")
            self.authorize(
                user,
                Attributes(
                    "impersonate", "", True, "", "v1", "serviceaccounts", "", namespace, account
                ),
            )
            base = service_account_user(namespace, account)
            extra = tuple(g for g in groups if g not in base.groups)
            for group in extra:
                self.authorize(
                    user, Attributes("impersonate", "", True, "", "v1", "groups", name=group)
                )
            return User(base.name, (*extra, *base.groups))
        asked = [("users", name)] + [("groups", g) for g in groups]
        for resource, value in asked:
            self.authorize(
                user, Attributes("impersonate", "", True, "", "v1", resource, name=value)
            )
        return User(name, (*groups, AUTHENTICATED))
