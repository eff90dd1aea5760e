"""Knative's rules for a revision's pod spec, under the ``config-features`` flags.

Follows knative/serving ``pkg/apis/serving/k8s_validation.go`` and
``fieldmask.go``: which fields a flag lets through, the serving container and
its one port, sidecars, init containers, volumes and their mounts, env
references, security contexts. Messages are Knative's where it has one
(``must not set the field(s)``, ``expected exactly one, got both``...), with
the flag to turn on added where a flag would allow the field.

``local`` adds what the local runtime cannot do yet: volumes (they need the
pod sandbox of docs/local-mode.md) are refused with a message saying they
work on Kubernetes.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from typing import Any

from zeroserve.api.errors import describe
from zeroserve.api.features import DISABLED, FeaturesConfig
from zeroserve.api.fields import Problems
from zeroserve.api.names import (
    check_dns1123_label,
    check_dns1123_subdomain,
    check_env_name,
)
from zeroserve.api.objects import Container, FieldRef, ResourceFieldRef, RevisionTemplate
from zeroserve.api.template import NOT_IN_KNATIVE, PROBE_HANDLERS, exactly_one

RESERVED_ENV = ("PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION")
"""Set by the runtime in every container, as Knative does (sidecars may set ``PORT``)."""
RESERVED_PORTS = (8012, 8013, 8022, 8112, 9090, 9091)
"""The queue-proxy's ports in a pod (serving, h2c, admin, profiling, metrics)."""
RESERVED_CONTAINER_NAMES = ("queue-proxy",)
RESERVED_MOUNT_PATHS = ("/", "/dev", "/dev/log")
PORT_NAMES = ("", "http1", "h2c")
MAX_ID = 2**31 - 1

POD_FLAGS: Mapping[str, str] = {
    "affinity": "kubernetes.podspec-affinity",
    "topologySpreadConstraints": "kubernetes.podspec-topologyspreadconstraints",
    "hostAliases": "kubernetes.podspec-hostaliases",
    "nodeSelector": "kubernetes.podspec-nodeselector",
    "runtimeClassName": "kubernetes.podspec-runtimeclassname",
    "tolerations": "kubernetes.podspec-tolerations",
    "shareProcessNamespace": "kubernetes.podspec-shareprocessnamespace",
    "priorityClassName": "kubernetes.podspec-priorityclassname",
    "schedulerName": "kubernetes.podspec-schedulername",
    "dnsPolicy": "kubernetes.podspec-dnspolicy",
    "dnsConfig": "kubernetes.podspec-dnsconfig",
    "hostIPC": "kubernetes.podspec-hostipc",
    "hostPID": "kubernetes.podspec-hostpid",
    "hostNetwork": "kubernetes.podspec-hostnetwork",
}
"""Pod fields that a ``config-features`` flag lets through (``enabled`` or ``allowed``)."""
VOLUME_FLAGS: Mapping[str, tuple[str, str]] = {
    "emptyDir": ("kubernetes.podspec-volumes-emptydir", "EmptyDir"),
    "hostPath": ("kubernetes.podspec-volumes-hostpath", "HostPath"),
    "csi": ("kubernetes.podspec-volumes-csi", "CSI"),
    "ephemeral": ("kubernetes.podspec-volumes-ephemeral", "Ephemeral"),
    "image": ("kubernetes.podspec-volumes-image", "Image"),
}
"""Volume kinds that need their flag ``enabled`` (Knative's message names the kind)."""
ENV_FIELD_PATHS = (
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
)
"""The pod fields an env ``fieldRef`` may read (and ``metadata.labels['k']`` and
``metadata.annotations['k']``), as the Kubernetes API server allows."""
ENV_RESOURCES = (
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
)
_POD_SECURITY_FLAGGED = ("runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup", "supplementalGroups")
_LOCAL_VOLUMES = (
    "not supported without a pod sandbox: `zeroserve up` mounts volumes when it runs "
    "replicas in pod sandboxes (as root on Linux, --sandbox pod; its first lines say which "
    "mode it chose and why); volumes also work on Kubernetes (zeroserve's chart)"
)
_CLUSTER_VOLUMES = {
    "persistentVolumeClaim": "PersistentVolumeClaim",
    "csi": "CSI",
    "ephemeral": "Ephemeral",
    "image": "Image",
}
"""Volume kinds a pod sandbox cannot provide: they need a cluster's storage or images."""


def _flag_hint(flag: str) -> str:
    return f"{NOT_IN_KNATIVE} (it needs {flag}: enabled in config-features)"


def validate_pod_spec(
    t: RevisionTemplate,
    features: FeaturesConfig,
    problems: Problems,
    *,
    local: bool,
    sandbox: bool = False,
) -> None:
    """Every Knative rule ``t``'s pod spec breaks, as (path, rule) into ``problems``.
    ``sandbox``: locally, replicas run in pod sandboxes and can mount volumes."""
    base = "spec.template.spec"
    pod = t.pod
    for key, flag in POD_FLAGS.items():
        if key in pod and not features.allows(flag):
            problems.append((f"{base}.{key}", _flag_hint(flag)))
    if pod.get("automountServiceAccountToken") is True:
        problems.append(
            (f"{base}.automountServiceAccountToken", f"{NOT_IN_KNATIVE} (only false is allowed)")
        )
    account = pod.get("serviceAccountName")
    if account and (bad := check_dns1123_subdomain(account)):
        problems.append((f"{base}.serviceAccountName", bad))
    for i, secret in enumerate(pod.get("imagePullSecrets") or ()):
        name = secret.get("name") or ""
        if name and (bad := check_dns1123_subdomain(name)):
            problems.append((f"{base}.imagePullSecrets[{i}].name", bad))
    if "securityContext" in pod:
        _pod_security_context(pod["securityContext"], features, f"{base}.securityContext", problems)

    volumes = _volumes(
        t, features, problems, local=local and not sandbox, sandbox=local and sandbox
    )

    containers = t.containers
    if len(containers) > 1 and not features.enabled("multi-container"):
        problems.append(
            (
                f"{base}.containers",
                f"multi-container is off, but found {len(containers)} containers",
            )
        )
    ported = [c for c in containers if c.ports]
    port_count = sum(len(c.ports) for c in containers)
    if port_count > 1:
        problems.append(
            (
                f"{base}.containers[*].ports",
                "more than one container port is set: only a single port is allowed "
                "across all containers",
            )
        )
    elif not ported and len(containers) > 1:
        problems.append(
            (
                f"{base}.containers[*].ports",
                "missing required field: with several containers, the serving one "
                "declares the port",
            )
        )
    serving = t.container
    names: dict[str, str] = {}
    for i, c in enumerate(containers):
        path = f"{base}.containers[{i}]"
        _unique_name(c, path, names, problems)
        is_serving = c is serving
        _container(
            c, path, features, volumes, problems, local=local, sandbox=sandbox, serving=is_serving
        )
        if not is_serving:
            _sidecar_probes(c, path, features, problems)

    if t.init_containers and not features.allows("kubernetes.podspec-init-containers"):
        problems.append(
            (
                f"{base}.initContainers",
                f"pod spec support for init-containers is off, but found "
                f"{len(t.init_containers)} init containers (it needs "
                "kubernetes.podspec-init-containers: enabled in config-features)",
            )
        )
    for i, c in enumerate(t.init_containers):
        path = f"{base}.initContainers[{i}]"
        _unique_name(c, path, names, problems)
        for key, probe in (
            ("readinessProbe", c.readiness_probe),
            ("livenessProbe", c.liveness_probe),
            ("startupProbe", c.startup_probe),
        ):
            if probe is not None:
                problems.append((f"{path}.{key}", "field not allowed in an init container"))
        _container(
            c, path, features, volumes, problems, local=local, sandbox=sandbox, serving=False
        )


def _unique_name(c: Container, path: str, names: dict[str, str], problems: Problems) -> None:
    if not c.name:
        return
    if c.name in RESERVED_CONTAINER_NAMES:
        problems.append((f"{path}.name", f"{c.name!r} is a reserved container name"))
    if c.name in names:
        problems.append(
            (f"{path}.name", f"duplicate container name {c.name!r} (also {names[c.name]})")
        )
    names.setdefault(c.name, path)


def _container(
    c: Container,
    path: str,
    features: FeaturesConfig,
    volumes: Mapping[str, Mapping[str, Any]],
    problems: Problems,
    *,
    local: bool,
    serving: bool,
    sandbox: bool = False,
) -> None:
    if c.name and (bad := check_dns1123_label(c.name)):
        problems.append((f"{path}.name", bad))
    if not c.image and not local:
        problems.append((f"{path}.image", "missing required field"))
    if local and not c.command:
        problems.append(
            (
                f"{path}.command",
                "required locally: the image is not pulled, so the "
                'container needs a command: to run, e.g. command: ["python", "app.py"]',
            )
        )
    elif c.command and not c.command[0]:
        problems.append((f"{path}.command[0]", "must not be empty"))
    reserved = RESERVED_ENV if serving else RESERVED_ENV[1:]
    seen: dict[str, int] = {}
    for i, env in enumerate(c.env):
        bad = check_env_name(env.name) if env.name else None
        if bad is None and env.name in reserved:
            bad = f"{env.name!r} is a reserved environment variable ({', '.join(reserved)})"
        if bad is None and env.name in seen:
            bad = f"{env.name} is set twice (also env[{seen[env.name]}])"
        if bad:
            problems.append((f"{path}.env[{i}].name", bad))
        seen.setdefault(env.name, i)
        ref = env.value_from
        if isinstance(ref, FieldRef | ResourceFieldRef):
            key = "fieldRef" if isinstance(ref, FieldRef) else "resourceFieldRef"
            where = f"{path}.env[{i}].valueFrom.{key}"
            if not features.allows("kubernetes.podspec-fieldref"):
                problems.append((where, _flag_hint("kubernetes.podspec-fieldref")))
            elif isinstance(ref, FieldRef):
                _field_ref(ref, where, problems)
            elif ref.resource and ref.resource not in ENV_RESOURCES:
                problems.append(
                    (
                        f"{where}.resource",
                        f"Unsupported value: {ref.resource!r}: supported values: "
                        + ", ".join(ENV_RESOURCES),
                    )
                )
    for i, source in enumerate(c.env_from):
        if source.prefix and (bad := check_env_name(source.prefix)):
            problems.append((f"{path}.envFrom[{i}].prefix", bad))
    for i, port in enumerate(c.ports):
        where = f"{path}.ports[{i}]"
        if port.name not in PORT_NAMES:
            problems.append(
                (
                    f"{where}.name",
                    f"Port name {port.name} is not allowed: name must be empty, or one of: "
                    "'h2c', 'http1'",
                )
            )
        if not 1 <= port.container_port <= 65535:
            problems.append(
                (
                    f"{where}.containerPort",
                    f"must be between 1 and 65535, got {describe(port.container_port)}",
                )
            )
        elif port.container_port in RESERVED_PORTS:
            problems.append(
                (
                    f"{where}.containerPort",
                    f"{port.container_port} is a reserved port, please use a different value "
                    f"({', '.join(map(str, RESERVED_PORTS))} belong to the queue-proxy)",
                )
            )
        if port.protocol not in ("", "TCP"):
            problems.append((f"{where}.protocol", f"must be TCP, got {describe(port.protocol)}"))
    if serving:
        _serving_probes(c, path, problems)
    _security_context(c.security_context, features, f"{path}.securityContext", problems)
    _mounts(c, path, features, volumes, problems, local=local and not sandbox)


def _field_ref(ref: FieldRef, where: str, problems: Problems) -> None:
    if ref.api_version not in ("", "v1"):
        problems.append(
            (f"{where}.apiVersion", f"Unsupported value: {ref.api_version!r}: supported values: v1")
        )
    path = ref.field_path
    for prefix in ("metadata.labels", "metadata.annotations"):
        if path.startswith(f"{prefix}[") and path.endswith("]"):
            key = path[len(prefix) + 1 : -1]
            if len(key) >= 3 and key[0] == key[-1] and key[0] in "'\"":
                return
    if path and path not in ENV_FIELD_PATHS:
        problems.append(
            (
                f"{where}.fieldPath",
                f"Unsupported value: {path!r}: supported values: "
                + ", ".join(ENV_FIELD_PATHS)
                + ", metadata.labels['<key>'], metadata.annotations['<key>']",
            )
        )


def _serving_probes(c: Container, path: str, problems: Problems) -> None:
    for key, probe in (
        ("readinessProbe", c.readiness_probe),
        ("livenessProbe", c.liveness_probe),
        ("startupProbe", c.startup_probe),
    ):
        if probe is None:
            continue
        handlers = [h for h in PROBE_HANDLERS if h in probe]
        if not handlers and key != "readinessProbe":
            # A readiness probe without a handler is defaulted to TCP on the port.
            exactly_one(problems, f"{path}.{key}", handlers, PROBE_HANDLERS)
        for handler in ("httpGet", "tcpSocket"):
            port = probe.get(handler, {}).get("port")
            if port is not None and port not in (c.port.container_port, c.port.name or None):
                problems.append(
                    (
                        f"{path}.{key}.{handler}.port",
                        "Probe port must match container port: "
                        f"{c.port.container_port} (or unset), got {describe(port)}",
                    )
                )
        if key == "readinessProbe" and probe.get("periodSeconds", 1) == 0:
            for field in ("failureThreshold", "timeoutSeconds"):
                if probe.get(field):
                    problems.append(
                        (
                            f"{path}.{key}.{field}",
                            f"{field} is disallowed when periodSeconds is zero",
                        )
                    )


def _sidecar_probes(c: Container, path: str, features: FeaturesConfig, problems: Problems) -> None:
    if features.enabled("multi-container-probing"):
        return
    for key, probe in (
        ("readinessProbe", c.readiness_probe),
        ("livenessProbe", c.liveness_probe),
        ("startupProbe", c.startup_probe),
    ):
        for field in probe or {}:
            problems.append((f"{path}.{key}.{field}", _flag_hint("multi-container-probing")))


def _ids(context: Mapping[str, Any], path: str, keys: Sequence[str], problems: Problems) -> None:
    for key in keys:
        value = context.get(key)
        if isinstance(value, int) and not 0 <= value <= MAX_ID:
            problems.append((f"{path}.{key}", f"expected 0 <= {value} <= {MAX_ID}"))


def _pod_security_context(
    context: Mapping[str, Any], features: FeaturesConfig, path: str, problems: Problems
) -> None:
    if not features.allows("kubernetes.podspec-securitycontext"):
        for key in context:
            if key == "seccompProfile" and _opt_out_seccomp(context[key], features):
                continue
            problems.append((f"{path}.{key}", _flag_hint("kubernetes.podspec-securitycontext")))
    _ids(context, path, ("runAsUser", "runAsGroup", "fsGroup"), problems)
    for i, gid in enumerate(context.get("supplementalGroups") or ()):
        if not 0 <= gid <= MAX_ID:
            problems.append((f"{path}.supplementalGroups[{i}]", f"expected 0 <= {gid} <= {MAX_ID}"))


def _opt_out_seccomp(profile: object, features: FeaturesConfig) -> bool:
    """With ``secure-pod-defaults`` on, a pod may name the ``RuntimeDefault`` or
    ``Unconfined`` seccomp profile without ``kubernetes.podspec-securitycontext``, to opt
    out of the containers' default profile (Knative's ``PodSecurityContextMask``)."""
    return (
        features.secure_pod_defaults() != DISABLED
        and isinstance(profile, Mapping)
        and set(profile) == {"type"}
        and profile["type"] in ("RuntimeDefault", "Unconfined")
    )


def _security_context(
    context: Mapping[str, Any], features: FeaturesConfig, path: str, problems: Problems
) -> None:
    if not context:
        return
    if context.get("privileged") is True:
        problems.append((f"{path}.privileged", f"{NOT_IN_KNATIVE} (only false is allowed)"))
    add = (context.get("capabilities") or {}).get("add")
    # secure-pod-defaults adds NET_BIND_SERVICE alone for a low port (Knative's
    # CapabilitiesMask lets exactly that through when the flag is on).
    bind_only = list(add or ()) == ["NET_BIND_SERVICE"]
    if bind_only and features.secure_pod_defaults() != DISABLED:
        add = None
    if add and not features.enabled("kubernetes.containerspec-addcapabilities"):
        problems.append(
            (f"{path}.capabilities.add", _flag_hint("kubernetes.containerspec-addcapabilities"))
        )
    _ids(context, path, ("runAsUser", "runAsGroup"), problems)


# ----- volumes -------------------------------------------------------------------------------


def _volumes(
    t: RevisionTemplate,
    features: FeaturesConfig,
    problems: Problems,
    *,
    local: bool,
    sandbox: bool = False,
) -> dict[str, Mapping[str, Any]]:
    """``local``: no volumes at all (no pod sandbox); ``sandbox``: the kinds a pod sandbox
    mounts (Secret, ConfigMap, projected, emptyDir, hostPath)."""
    base = "spec.template.spec.volumes"
    volumes: dict[str, Mapping[str, Any]] = {}
    mounted = {m.get("name") for c in (*t.containers, *t.init_containers) for m in c.volume_mounts}
    if local and t.pod.get("volumes"):
        problems.append((base, _LOCAL_VOLUMES))
    for i, volume in enumerate(t.pod.get("volumes") or ()):
        path = f"{base}[{i}]"
        name = volume.get("name") or ""
        if name in volumes:
            problems.append((f"{path}.name", f"duplicate volume name {name!r}"))
        if name and name not in mounted:
            problems.append((f"{path}.name", f"volume with name {name!r} not mounted"))
        if name and (bad := check_dns1123_label(name)):
            problems.append((f"{path}.name", bad))
        for kind, (flag, label) in VOLUME_FLAGS.items():
            if kind in volume and not features.enabled(flag):
                problems.append(
                    (
                        f"{path}.{kind}",
                        f"{label} volume support is disabled, but found {label} volume "
                        f"{name} (it needs {flag}: enabled in config-features)",
                    )
                )
        if sandbox:
            _sandbox_volume(volume, path, problems)
        claim = volume.get("persistentVolumeClaim")
        if claim is not None:
            claim_name = claim.get("claimName", "")
            if not features.enabled("kubernetes.podspec-persistent-volume-claim"):
                problems.append(
                    (
                        f"{path}.persistentVolumeClaim",
                        "Persistent volume claim support is disabled, but found persistent "
                        f"volume claim {claim_name} (it needs "
                        "kubernetes.podspec-persistent-volume-claim: enabled in config-features)",
                    )
                )
            if not claim.get("readOnly") and not features.enabled(
                "kubernetes.podspec-persistent-volume-write"
            ):
                problems.append(
                    (
                        f"{path}.persistentVolumeClaim",
                        "Persistent volume write support is disabled, but found persistent "
                        f"volume claim {claim_name} that is not read-only (it needs "
                        "kubernetes.podspec-persistent-volume-write: enabled in config-features)",
                    )
                )
        empty = volume.get("emptyDir")
        if empty is not None and empty.get("medium", "") not in ("", "Memory"):
            problems.append(
                (
                    f"{path}.emptyDir.medium",
                    f"invalid value: {empty['medium']} (must be empty or Memory)",
                )
            )
        volumes.setdefault(name, volume)
    return volumes


def _sandbox_volume(volume: Mapping[str, Any], path: str, problems: Problems) -> None:
    """What a pod sandbox cannot mount, refused when applied rather than when a replica
    starts."""
    for kind, label in _CLUSTER_VOLUMES.items():
        if kind in volume:
            problems.append(
                (
                    f"{path}.{kind}",
                    f"not supported locally: {label} volumes need a cluster's storage; they "
                    "work on Kubernetes (zeroserve's chart)",
                )
            )


def _mounts(
    c: Container,
    path: str,
    features: FeaturesConfig,
    volumes: Mapping[str, Mapping[str, Any]],
    problems: Problems,
    *,
    local: bool,
) -> None:
    seen: set[str] = set()
    for i, mount in enumerate(c.volume_mounts):
        where = f"{path}.volumeMounts[{i}]"
        if local and not volumes:
            problems.append((where, _LOCAL_VOLUMES))
        name = mount.get("name", "")
        volume = volumes.get(name)
        if volume is None:
            problems.append((f"{where}.name", "volumeMount has no matching volume"))
            volume = {}
        target = mount.get("mountPath", "")
        clean = posixpath.normpath(target) if target else ""
        if not target:
            pass  # reported by the parser as a missing field
        elif clean in RESERVED_MOUNT_PATHS:
            problems.append((f"{where}.mountPath", f"mountPath {clean!r} is a reserved path"))
        elif not posixpath.isabs(target):
            problems.append(
                (f"{where}.mountPath", f"invalid value: {target} (must be an absolute path)")
            )
        elif clean in seen:
            problems.append((f"{where}.mountPath", f"invalid value: {target!r} must be unique"))
        seen.add(clean)
        writable_kind = any(k in volume for k in ("emptyDir", "persistentVolumeClaim", "ephemeral"))
        if volume and not writable_kind and not mount.get("readOnly"):
            problems.append(
                (f"{where}.readOnly", "volume mount should be readOnly for this type of volume")
            )
        claim = volume.get("persistentVolumeClaim")
        if claim is not None and claim.get("readOnly") and not mount.get("readOnly"):
            problems.append((f"{where}.readOnly", "volume is readOnly but volume mount is not"))
        propagation = mount.get("mountPropagation")
        if propagation is not None:
            if not features.enabled("kubernetes.podspec-volumes-mount-propagation"):
                problems.append(
                    (
                        f"{where}.mountPropagation",
                        f"Volume Mount Propagation support is disabled, but found volume mount "
                        f"{name} with mount propagation (it needs "
                        "kubernetes.podspec-volumes-mount-propagation: enabled in config-features)",
                    )
                )
            if propagation not in ("None", "HostToContainer"):
                problems.append(
                    (
                        f"{where}.mountPropagation",
                        "mount propagation should be set to None or HostToContainer",
                    )
                )
