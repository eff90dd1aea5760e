"""``secure-pod-defaults``: the security context a revision template's containers get
when it is defaulted (docs/kubernetes.md, "Pod Security").

Knative's ``RevisionSpec.defaultSecurityContext``
(``pkg/apis/serving/v1/revision_defaults.go``) fills, for every container and init
container, only the fields the user left unset:

- ``allowPrivilegeEscalation: false``;
- ``seccompProfile: {type: RuntimeDefault}`` on the container, unless the pod's
  ``securityContext`` names a seccomp profile type (a container profile without a
  type gets the type);
- ``capabilities: {drop: [ALL]}`` when the container has no ``capabilities`` at all,
  plus ``add: [NET_BIND_SERVICE]`` when one of its ports is below 1024;
- with ``Enabled`` only (``AllowRootBounded`` leaves it out, so images that run as
  root keep working): ``runAsNonRoot: true``, unless the pod or the container says.

With these a pod meets the ``restricted`` Pod Security Standard (the queue-proxy's own
context already does); with ``AllowRootBounded`` it meets ``baseline`` and everything of
``restricted`` but ``runAsNonRoot``. ``Disabled`` (the default) changes nothing.
"""

from __future__ import annotations

from typing import Any

from zeroserve.api.features import ALLOW_ROOT_BOUNDED, ENABLED

RUNTIME_DEFAULT = "RuntimeDefault"
LOW_PORT = 1024
"""Ports below this need ``NET_BIND_SERVICE`` to be bound by a non-root process."""


def secure_container(container: dict[str, Any], pod_context: dict[str, Any], flag: str) -> None:
    """Default one container's ``securityContext`` (in place) as ``flag`` says."""
    if flag not in (ENABLED, ALLOW_ROOT_BOUNDED):
        return
    written = container.get("securityContext")
    context: dict[str, Any] = dict(written) if isinstance(written, dict) else {}
    if context.get("allowPrivilegeEscalation") is None:
        context["allowPrivilegeEscalation"] = False
    pod_seccomp = pod_context.get("seccompProfile")
    if not (isinstance(pod_seccomp, dict) and pod_seccomp.get("type")):
        seccomp = context.get("seccompProfile")
        seccomp = dict(seccomp) if isinstance(seccomp, dict) else {}
        if not seccomp.get("type"):
            seccomp["type"] = RUNTIME_DEFAULT
        context["seccompProfile"] = seccomp
    if context.get("capabilities") is None:
        capabilities: dict[str, Any] = {"drop": ["ALL"]}
        if any(_low_port(port) for port in container.get("ports") or ()):
            capabilities["add"] = ["NET_BIND_SERVICE"]
        context["capabilities"] = capabilities
    if (
        flag == ENABLED
        and pod_context.get("runAsNonRoot") is None
        and context.get("runAsNonRoot") is None
    ):
        context["runAsNonRoot"] = True
    if context:
        container["securityContext"] = context


def _low_port(port: object) -> bool:
    if not isinstance(port, dict):
        return False
    number = port.get("containerPort")
    return isinstance(number, int) and not isinstance(number, bool) and number < LOW_PORT


def secure_pod_spec(spec: dict[str, Any], flag: str) -> None:
    """Default the security context of every container and init container of a revision
    template's ``spec`` (in place); the pod's own ``securityContext`` is left as written."""
    pod_context = spec.get("securityContext")
    if not isinstance(pod_context, dict):
        pod_context = {}
    for key in ("containers", "initContainers"):
        containers = spec.get(key)
        for container in containers if isinstance(containers, list) else ():
            if isinstance(container, dict):
                secure_container(container, pod_context, flag)
