"""Pod Security Admission for the fake API server: a namespace's
``pod-security.kubernetes.io/enforce`` label refuses Pod creates that break its level.

What kube-apiserver's ``PodSecurity`` admission plugin does in enforce mode
(https://kubernetes.io/docs/concepts/security/pod-security-standards/ and
https://kubernetes.io/docs/concepts/security/pod-security-admission/): the level is
``privileged`` (everything allowed), ``baseline`` or ``restricted`` (baseline plus its
own checks); ``pod-security.kubernetes.io/enforce-version`` only shows in the message
(every version is checked as ``latest``). A refused create is a 403 whose message has
the apiserver's shape::

    pods "NAME" is forbidden: violates PodSecurity "restricted:latest": REASON (DETAIL), ...

with the checks in the order of their IDs, and each check's containers named together
(``container "a"`` / ``containers "a", "b"``). Checked: host namespaces, privileged
containers, capabilities beyond the baseline set, hostPath volumes, host ports, the
baseline's seccomp and ``/proc`` mount rules; for ``restricted`` also
``allowPrivilegeEscalation``, ``capabilities`` (drop ``ALL``, add at most
``NET_BIND_SERVICE``), ``runAsNonRoot``, ``runAsUser: 0``, the seccomp profile and the
volume types. Not done: AppArmor, SELinux options, sysctls, Windows host processes, the
``audit`` and ``warn`` modes, exemptions, and pod updates (only creates are checked).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from . import errors

ENFORCE = "pod-security.kubernetes.io/enforce"
ENFORCE_VERSION = "pod-security.kubernetes.io/enforce-version"
PRIVILEGED, BASELINE, RESTRICTED = "privileged", "baseline", "restricted"
LEVELS = (PRIVILEGED, BASELINE, RESTRICTED)

BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
RESTRICTED_VOLUMES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
"""The volume sources ``restricted`` allows."""

Obj = dict[str, Any]


def level_of(namespace: Obj | None) -> tuple[str, str] | None:
    """The (level, version) the namespace enforces; None when it enforces nothing (no
    label, ``privileged``, or a value that is not a level)."""
    labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
    level = labels.get(ENFORCE)
    if level not in (BASELINE, RESTRICTED):
        return None
    return level, str(labels.get(ENFORCE_VERSION) or "latest")


def _containers(spec: Obj) -> list[Obj]:
    return [
        c
        for key in ("initContainers", "containers", "ephemeralContainers")
        for c in spec.get(key) or ()
        if isinstance(c, dict)
    ]


def _context(obj: Obj) -> Obj:
    value = obj.get("securityContext")
    return value if isinstance(value, dict) else {}


def _quoted(items: Iterable[str]) -> str:
    return ", ".join(f'"{item}"' for item in items)


def _named(noun: str, names: list[str]) -> str:
    """``container "a"`` or ``containers "a", "b"``."""
    return f"{noun}{'s' if len(names) > 1 else ''} {_quoted(names)}"


def _verb(names: list[str], one: str, many: str) -> str:
    return many if len(names) > 1 else one


def _offenders(spec: Obj, bad: Callable[[Obj], bool]) -> list[str]:
    return [str(c.get("name")) for c in _containers(spec) if bad(c)]


# ----- baseline ----------------------------------------------------------------------------


def _capabilities_baseline(spec: Obj) -> str | None:
    names, added = [], []
    for c in _containers(spec):
        extra = [
            cap
            for cap in (_context(c).get("capabilities") or {}).get("add") or ()
            if cap not in BASELINE_CAPABILITIES
        ]
        if extra:
            names.append(str(c.get("name")))
            added += [cap for cap in extra if cap not in added]
    if not names:
        return None
    return (
        f"non-default capabilities ({_named('container', names)} must not include "
        f"{_quoted(sorted(added))} in securityContext.capabilities.add)"
    )


def _host_namespaces(spec: Obj) -> str | None:
    found = [f"{key}=true" for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key)]
    return f"host namespaces ({', '.join(found)})" if found else None


def _host_path_volumes(spec: Obj) -> str | None:
    names = [str(v.get("name")) for v in spec.get("volumes") or () if "hostPath" in v]
    return f"hostPath volumes ({_named('volume', names)})" if names else None


def _host_ports(spec: Obj) -> str | None:
    names, ports = [], []
    for c in _containers(spec):
        used = [p["hostPort"] for p in c.get("ports") or () if p.get("hostPort")]
        if used:
            names.append(str(c.get("name")))
            ports += [str(p) for p in used if str(p) not in ports]
    if not names:
        return None
    return (
        f"hostPort ({_named('container', names)} {_verb(names, 'uses', 'use')} "
        f"hostPort{'s' if len(ports) > 1 else ''} {', '.join(ports)})"
    )


def _privileged(spec: Obj) -> str | None:
    names = _offenders(spec, lambda c: _context(c).get("privileged") is True)
    if not names:
        return None
    return f"privileged ({_named('container', names)} must not set securityContext.privileged=true)"


def _proc_mount(spec: Obj) -> str | None:
    names = _offenders(spec, lambda c: _context(c).get("procMount") not in (None, "Default"))
    if not names:
        return None
    return (
        f"procMount ({_named('container', names)} "
        'must not set securityContext.procMount to "Unmasked")'
    )


def _seccomp_type(obj: Obj) -> str | None:
    profile = _context(obj).get("seccompProfile")
    return str(profile.get("type") or "") if isinstance(profile, dict) else None


def _seccomp(spec: Obj, good: Callable[[str], bool], *, require: bool) -> str | None:
    """The seccomp check: the pod and the containers whose profile type is not
    ``good``; with ``require``, also the containers left without one by pod and
    container alike."""
    setters, values = [], set()
    pod_type = _seccomp_type(spec)
    if pod_type is not None and not good(pod_type):
        setters.append("pod")
        values.add(pod_type)
    explicit, implicit = [], []
    for c in _containers(spec):
        kind = _seccomp_type(c)
        if kind is not None:
            if not good(kind):
                explicit.append(str(c.get("name")))
                values.add(kind)
        elif pod_type is None or not good(pod_type):
            implicit.append(str(c.get("name")))
    if explicit:
        setters.append(_named("container", explicit))
    if setters:
        return (
            f"seccompProfile ({' and '.join(setters)} must not set "
            f"securityContext.seccompProfile.type to {_quoted(sorted(values))})"
        )
    if require and implicit:
        return (
            f"seccompProfile (pod or {_named('container', implicit)} must set "
            'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'
        )
    return None


def _seccomp_baseline(spec: Obj) -> str | None:
    return _seccomp(spec, lambda kind: kind != "Unconfined", require=False)


# ----- restricted --------------------------------------------------------------------------


def _allow_privilege_escalation(spec: Obj) -> str | None:
    names = _offenders(spec, lambda c: _context(c).get("allowPrivilegeEscalation") is not False)
    if not names:
        return None
    return (
        f"allowPrivilegeEscalation != false ({_named('container', names)} "
        "must set securityContext.allowPrivilegeEscalation=false)"
    )


def _capabilities_restricted(spec: Obj) -> str | None:
    no_drop, adding, added = [], [], []
    for c in _containers(spec):
        caps = _context(c).get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or ()):
            no_drop.append(str(c.get("name")))
        extra = [cap for cap in caps.get("add") or () if cap != "NET_BIND_SERVICE"]
        if extra:
            adding.append(str(c.get("name")))
            added += [cap for cap in extra if cap not in added]
    found = []
    if no_drop:
        found.append(
            f'{_named("container", no_drop)} must set securityContext.capabilities.drop=["ALL"]'
        )
    if adding:
        found.append(
            f"{_named('container', adding)} must not include {_quoted(sorted(added))} "
            "in securityContext.capabilities.add"
        )
    return f"unrestricted capabilities ({'; '.join(found)})" if found else None


def _restricted_volumes(spec: Obj) -> str | None:
    bad: list[tuple[str, str]] = []
    for volume in spec.get("volumes") or ():
        kinds = [k for k in volume if k != "name" and k not in RESTRICTED_VOLUMES]
        if kinds:
            bad.append((str(volume.get("name")), kinds[0]))
    if not bad:
        return None
    names = [name for name, _ in bad]
    kinds = sorted({kind for _, kind in bad})
    return (
        f"restricted volume types ({_named('volume', names)} "
        f"{_verb(names, 'uses', 'use')} restricted volume "
        f"type{'s' if len(kinds) > 1 else ''} {_quoted(kinds)})"
    )


def _run_as_non_root(spec: Obj) -> str | None:
    setters = []
    pod = _context(spec).get("runAsNonRoot")
    if pod is False:
        setters.append("pod")
    explicit = _offenders(spec, lambda c: _context(c).get("runAsNonRoot") is False)
    if explicit:
        setters.append(_named("container", explicit))
    if setters:
        return (
            f"runAsNonRoot != true ({' and '.join(setters)} must not set "
            "securityContext.runAsNonRoot=false)"
        )
    implicit = _offenders(spec, lambda c: _context(c).get("runAsNonRoot") is None)
    if pod is not True and implicit:
        return (
            f"runAsNonRoot != true (pod or {_named('container', implicit)} must set "
            "securityContext.runAsNonRoot=true)"
        )
    return None


def _run_as_user(spec: Obj) -> str | None:
    setters = []
    if _context(spec).get("runAsUser") == 0:
        setters.append("pod")
    names = _offenders(spec, lambda c: _context(c).get("runAsUser") == 0)
    if names:
        setters.append(_named("container", names))
    return f"runAsUser=0 ({' and '.join(setters)} must not set runAsUser=0)" if setters else None


def _seccomp_restricted(spec: Obj) -> str | None:
    return _seccomp(spec, lambda kind: kind in ("RuntimeDefault", "Localhost"), require=True)


Check = Callable[[Obj], "str | None"]

BASELINE_CHECKS: dict[str, Check] = {
    "capabilities_baseline": _capabilities_baseline,
    "hostNamespaces": _host_namespaces,
    "hostPathVolumes": _host_path_volumes,
    "hostPorts": _host_ports,
    "privileged": _privileged,
    "procMount": _proc_mount,
    "seccompProfile_baseline": _seccomp_baseline,
}
RESTRICTED_CHECKS: dict[str, Check] = {
    "allowPrivilegeEscalation": _allow_privilege_escalation,
    "capabilities_restricted": _capabilities_restricted,
    "restrictedVolumes": _restricted_volumes,
    "runAsNonRoot": _run_as_non_root,
    "runAsUser": _run_as_user,
    "seccompProfile_restricted": _seccomp_restricted,
}
OVERRIDDEN = {"capabilities_baseline", "hostPathVolumes", "seccompProfile_baseline"}
"""Baseline checks a restricted one replaces (it says the same, stricter)."""


def violations(spec: Obj, level: str) -> list[str]:
    """Each broken check of ``level``, ``reason (detail)``, in the order of the check IDs."""
    checks = dict(BASELINE_CHECKS) if level in (BASELINE, RESTRICTED) else {}
    if level == RESTRICTED:
        checks = {k: v for k, v in checks.items() if k not in OVERRIDDEN} | RESTRICTED_CHECKS
    found = (checks[key](spec) for key in sorted(checks))
    return [v for v in found if v]


def admit(pod: Obj, namespace: Obj | None) -> None:
    """Refuse ``pod`` (being created in ``namespace``) with the apiserver's 403 when it
    breaks the level the namespace enforces."""
    enforced = level_of(namespace)
    if enforced is None:
        return
    level, version = enforced
    found = violations(pod.get("spec") or {}, level)
    if found:
        name = (pod.get("metadata") or {}).get("name", "")
        raise errors.ApiError(
            403,
            f'pods "{name}" is forbidden: violates PodSecurity "{level}:{version}": '
            + ", ".join(found),
            "Forbidden",
            {"name": name, "kind": "pods"},
        )
