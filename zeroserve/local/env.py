"""A container's environment as the kubelet makes it when it creates the container.

Pure: the Secrets and ConfigMaps come from a ``Lookup`` (the locally applied
objects, as they are at that moment), the pod's facts from ``PodFacts``, the
node's capacity from ``Node``. Follows the kubelet's
``makeEnvironmentVariables`` (kubernetes ``pkg/kubelet/kubelet_pods.go``):

- ``envFrom`` first, in order, later entries winning: every key of the object
  (a ConfigMap's ``data``, not its ``binaryData``), with the entry's prefix; keys
  that are not valid variable names are skipped;
- then ``env`` in order, winning over ``envFrom``: a literal ``value`` with its
  ``$(VAR)`` references expanded against the variables made so far (``$$`` is a
  literal ``$``; an unknown reference stays as written); ``secretKeyRef`` and
  ``configMapKeyRef``; ``fieldRef`` (the pod's name, namespace, uid, labels,
  annotations, node, service account, IPs); ``resourceFieldRef`` (the container's
  limits and requests over a divisor, unset limits falling back to the node's
  capacity);
- a missing object or key that is not ``optional`` fails the container's creation
  (:class:`EnvError`, the kubelet's ``CreateContainerConfigError`` and its words:
  ``secret "db" not found``, ``couldn't find key password in Secret default/db``);
  with ``optional: true`` the variable is left out.

Secret values are bytes; they reach the process as they are (decoded as UTF-8,
with undecodable bytes passed through unchanged).
"""

from __future__ import annotations

import math
import os
import re
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from zeroserve.api.names import check_env_name
from zeroserve.api.objects import ConfigMapObject, Container, FieldRef, KeyRef, SecretObject

CONFIG_ERROR = "CreateContainerConfigError"
"""The kubelet's waiting reason for a container whose env cannot be made."""

Lookup = Callable[[str, str, str], ConfigMapObject | SecretObject | None]
"""(kind ``Secret``/``ConfigMap``, namespace, name) -> the object as it is now, or None."""


class EnvError(Exception):
    """The container cannot be created; ``message`` is the kubelet's."""

    reason = CONFIG_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class PodFacts:
    """What ``fieldRef`` reads: the pod (locally, the replica)."""

    name: str
    namespace: str
    uid: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    node_name: str = ""
    service_account: str = "default"
    pod_ip: str = "127.0.0.1"
    host_ip: str = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Node:
    """The node's allocatable resources: what an unset limit means."""

    cpu: Fraction
    """Cores."""
    memory: Fraction
    """Bytes."""
    ephemeral_storage: Fraction = Fraction(0)
    """Bytes."""

    @classmethod
    def this_host(cls) -> Node:
        """This machine: its CPUs, its memory, the disk of the working directory."""
        try:
            memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError):
            memory = 0
        try:
            st = os.statvfs(".")
            disk = st.f_frsize * st.f_blocks
        except OSError:
            disk = 0
        return cls(Fraction(os.cpu_count() or 1), Fraction(memory), Fraction(disk))


# ----- quantities ----------------------------------------------------------------------------

_QUANTITY = re.compile(
    r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?"
)
_SUFFIX = {
    "": Fraction(1),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    **{s: Fraction(1024 ** (i + 1)) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
}


def quantity(value: str | int | float) -> Fraction:
    """A Kubernetes resource quantity (``500m``, ``0.5``, ``128Mi``, ``1e3``) exactly."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Fraction(value)
    m = _QUANTITY.fullmatch(str(value).strip())
    if m is None:
        raise ValueError(f"not a quantity: {value!r}")
    number, suffix = Fraction(m.group(1)), m.group(2) or ""
    if suffix[:1] in ("e", "E"):
        return number * Fraction(10) ** int(suffix[1:])
    return number * _SUFFIX[suffix]


def _ceil(x: Fraction) -> int:
    return math.ceil(x)


def resource_value(resource: str, container: Container, divisor: object, node: Node) -> str:
    """``resourceFieldRef``: cpu in whole divisor units rounded up (from millicores, as
    Kubernetes' ``MilliValue``), memory and storage in whole divisor units rounded up.
    An unset limit is the node's allocatable; an unset request is 0."""
    div = quantity(divisor) if isinstance(divisor, str | int | float) else Fraction(0)
    if div == 0:
        div = Fraction(1)
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or not name:
        raise EnvError(f"unsupported container resource : {resource}")
    given = container.resources.get(kind, {}).get(name)
    if given is None and kind == "requests":
        # API defaulting: a request left out but limited equals the limit
        given = container.resources.get("limits", {}).get(name)
    fallback = {"cpu": node.cpu, "memory": node.memory, "ephemeral-storage": node.ephemeral_storage}
    if given is not None:
        amount = quantity(given)
    elif kind == "limits" and name in fallback:
        amount = fallback[name]
    elif name in fallback or name.startswith("hugepages-"):
        amount = Fraction(0)
    else:
        raise EnvError(f"unsupported container resource : {resource}")
    if name == "cpu":
        return str(_ceil(Fraction(_ceil(amount * 1000)) / _ceil(div * 1000)))
    return str(_ceil(Fraction(_ceil(amount)) / _ceil(div)))


# ----- $(VAR) expansion ----------------------------------------------------------------------


def expand(text: str, env: Mapping[str, str]) -> str:
    """The kubelet's ``$(VAR)`` expansion (``third_party/forked/golang/expansion``):
    ``$(NAME)`` becomes the variable when defined and stays as written otherwise,
    ``$$`` is ``$``, any other ``$`` is kept."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c != "$" or i + 1 == n:
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            close = text.find(")", i + 2)
            if close < 0:
                out.append("$(")
                i += 2
            else:
                name = text[i + 2 : close]
                out.append(env.get(name, f"$({name})"))
                i = close + 1
        else:
            out.append("$" + nxt)
            i += 2
    return "".join(out)


def expand_command(argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """``command`` and ``args`` with ``$(VAR)`` expanded from the container's env."""
    return [expand(a, env) for a in argv]


# ----- the environment -----------------------------------------------------------------------

_SUBSCRIPT = re.compile(r"(metadata\.(?:labels|annotations))\['(.*)'\]")


def field_value(path: str, pod: PodFacts) -> str:
    """``fieldRef``: a field of the pod, as the kubelet's ``podFieldSelectorRuntimeValue``."""
    m = _SUBSCRIPT.fullmatch(path)
    if m is not None:
        source = pod.labels if m.group(1) == "metadata.labels" else pod.annotations
        return source.get(m.group(2), "")
    simple = {
        "metadata.name": pod.name,
        "metadata.namespace": pod.namespace,
        "metadata.uid": pod.uid,
        "spec.nodeName": pod.node_name,
        "spec.serviceAccountName": pod.service_account,
        "status.podIP": pod.pod_ip,
        "status.podIPs": pod.pod_ip,
        "status.hostIP": pod.host_ip,
        "status.hostIPs": pod.host_ip,
    }
    if path not in simple:
        raise EnvError(f"unsupported fieldPath: {path}")
    return simple[path]


def _text(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


def _object(
    kind: str, namespace: str, name: str, lookup: Lookup
) -> ConfigMapObject | SecretObject | None:
    obj = lookup(kind, namespace, name)
    ok = SecretObject if kind == "Secret" else ConfigMapObject
    return obj if isinstance(obj, ok) else None


def _key_value(ref: KeyRef, namespace: str, lookup: Lookup) -> str | None:
    """The referenced value; None when missing and optional; EnvError otherwise."""
    obj = _object(ref.kind, namespace, ref.name, lookup)
    if obj is None:
        if ref.optional:
            return None
        raise EnvError(f'{ref.kind.lower()} "{ref.name}" not found')
    if isinstance(obj, SecretObject):
        raw = obj.value(ref.key)
        value = None if raw is None else _text(raw)
    else:
        value = obj.data.get(ref.key)
    if value is None and not ref.optional:
        raise EnvError(f"couldn't find key {ref.key} in {ref.kind} {namespace}/{ref.name}")
    return value


def resolve_env(
    container: Container,
    *,
    namespace: str,
    lookup: Lookup,
    pod: PodFacts,
    node: Node | None = None,
    containers: Mapping[str, Container] | None = None,
) -> dict[str, str]:
    """The container's variables in the order the kubelet sets them (module doc).
    ``containers`` are the pod's containers by name, for a ``resourceFieldRef`` naming
    another one. Raises :class:`EnvError` when the container cannot be created."""
    env: dict[str, str] = {}
    value: str | None
    for source in container.env_from:
        obj = _object(source.kind, namespace, source.name, lookup)
        if obj is None:
            if source.optional:
                continue
            raise EnvError(f'{source.kind.lower()} "{source.name}" not found')
        if isinstance(obj, SecretObject):
            items = {k: _text(obj.value(k) or b"") for k in obj.data}
        else:
            items = dict(obj.data)
        for key, item in items.items():
            name = source.prefix + key
            if check_env_name(name) is None:
                env[name] = item
    for var in container.env:
        ref = var.value_from
        if ref is None:
            value = expand(var.value, env)
        elif isinstance(ref, KeyRef):
            value = _key_value(ref, namespace, lookup)
        elif isinstance(ref, FieldRef):
            value = field_value(ref.field_path, pod)
        else:
            target = container
            if ref.container_name:
                found = (containers or {}).get(ref.container_name)
                if found is None:
                    raise EnvError(f"container {ref.container_name} not found")
                target = found
            value = resource_value(ref.resource, target, ref.divisor, node or Node.this_host())
        if value is not None:
            env[var.name] = value
    return env


def node_name() -> str:
    """``spec.nodeName`` locally: this host's name."""
    return socket.gethostname()
