"""The columns ``kubectl get`` shows, as the apiserver's table printers give them.

Built-ins the test cluster's walkthrough looks at get their apiserver columns
(``pkg/printers/internalversion/printers.go``: Pods, Deployments, ReplicaSets, Services,
EndpointSlices, Nodes); custom resources get their CRD version's
``additionalPrinterColumns`` (JSONPath: dotted fields, ``[n]`` and
``[?(@.field=="value")]`` filters, which is what CRDs use), after Name, with Age last when
the CRD declares none. Everything else keeps Name and Age.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Column = tuple[dict[str, Any], Callable[[dict[str, Any]], Any]]

_STEP = re.compile(
    r"\.([A-Za-z0-9_-]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_.-]+)\s*==\s*[\"']([^\"']*)[\"']\)\]"
)


def jsonpath(obj: Any, path: str) -> Any:
    """A CRD printer column's JSONPath, evaluated; None when absent."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    if path.startswith("$"):
        path = path[1:]
    current: list[Any] = [obj]
    pos = 0
    while pos < len(path):
        m = _STEP.match(path, pos)
        if m is None:
            return None
        pos = m.end()
        nxt: list[Any] = []
        for value in current:
            if m.group(1) is not None and isinstance(value, dict):
                if m.group(1) in value:
                    nxt.append(value[m.group(1)])
            elif m.group(2) is not None and isinstance(value, list):
                i = int(m.group(2))
                if i < len(value):
                    nxt.append(value[i])
            elif m.group(3) is not None and isinstance(value, list):
                for item in value:
                    field = item
                    for part in m.group(3).split("."):
                        field = field.get(part) if isinstance(field, dict) else None
                    if field is not None and str(field) == m.group(4):
                        nxt.append(item)
        current = nxt
    if not current:
        return None
    return current[0] if len(current) == 1 else ",".join(str(v) for v in current)


def _col(
    name: str, kind: str = "string", priority: int = 0, description: str = ""
) -> dict[str, Any]:
    return {
        "name": name,
        "type": kind,
        "format": "",
        "priority": priority,
        "description": description,
    }


def _pod_status(pod: dict[str, Any]) -> str:
    """kubectl's STATUS: the pod's reason, a waiting or terminated container's reason,
    ``Terminating`` when deleted, else the phase."""
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Pending"
    for c in status.get("containerStatuses") or ():
        state = c.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state and state["terminated"].get("reason"):
            reason = state["terminated"]["reason"]
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return str(reason)


def _pod_ready(pod: dict[str, Any]) -> str:
    statuses = (pod.get("status") or {}).get("containerStatuses") or ()
    total = len((pod.get("spec") or {}).get("containers") or ())
    return f"{sum(1 for c in statuses if c.get('ready'))}/{total}"


def _restarts(pod: dict[str, Any]) -> int:
    return sum(
        int(c.get("restartCount") or 0)
        for c in (pod.get("status") or {}).get("containerStatuses") or ()
    )


def _ports(svc: dict[str, Any]) -> str:
    out = []
    for p in (svc.get("spec") or {}).get("ports") or ():
        text = f"{p.get('port')}/{p.get('protocol') or 'TCP'}"
        if p.get("nodePort"):
            text = f"{p['port']}:{p['nodePort']}/{p.get('protocol') or 'TCP'}"
        out.append(text)
    return ",".join(out) or "<none>"


def _status(obj: dict[str, Any], key: str) -> int:
    return int((obj.get("status") or {}).get(key) or 0)


BUILTIN: dict[str, list[Column]] = {
    "pods": [
        (_col("Ready"), _pod_ready),
        (_col("Status"), _pod_status),
        (_col("Restarts", "string"), lambda p: str(_restarts(p))),
        (_col("IP", priority=1), lambda p: (p.get("status") or {}).get("podIP") or "<none>"),
        (_col("Node", priority=1), lambda p: (p.get("spec") or {}).get("nodeName") or "<none>"),
    ],
    "deployments.apps": [
        (
            _col("Ready"),
            lambda d: f"{_status(d, 'readyReplicas')}/{(d.get('spec') or {}).get('replicas', 1)}",
        ),
        (_col("Up-to-date", "integer"), lambda d: _status(d, "updatedReplicas")),
        (_col("Available", "integer"), lambda d: _status(d, "availableReplicas")),
    ],
    "replicasets.apps": [
        (_col("Desired", "integer"), lambda r: (r.get("spec") or {}).get("replicas", 1)),
        (_col("Current", "integer"), lambda r: _status(r, "replicas")),
        (_col("Ready", "integer"), lambda r: _status(r, "readyReplicas")),
    ],
    "services": [
        (_col("Type"), lambda s: (s.get("spec") or {}).get("type") or "ClusterIP"),
        (_col("Cluster-IP"), lambda s: (s.get("spec") or {}).get("clusterIP") or "<none>"),
        (
            _col("External-IP"),
            lambda s: (s.get("spec") or {}).get("externalName") or "<none>",
        ),
        (_col("Port(s)"), _ports),
    ],
    "endpointslices.discovery.k8s.io": [
        (_col("AddressType"), lambda e: e.get("addressType", "")),
        (
            _col("Ports"),
            lambda e: (
                ",".join(str(p.get("port", "<unset>")) for p in e.get("ports") or ()) or "<unset>"
            ),
        ),
        (
            _col("Endpoints"),
            lambda e: (
                ",".join(a for x in e.get("endpoints") or () for a in x.get("addresses") or ())
                or "<unset>"
            ),
        ),
    ],
    "nodes": [
        (
            _col("Status"),
            lambda n: (
                "Ready"
                if any(
                    c.get("type") == "Ready" and c.get("status") == "True"
                    for c in (n.get("status") or {}).get("conditions") or ()
                )
                else "NotReady"
            ),
        ),
    ],
}


def crd_columns(crd: dict[str, Any] | None, version: str) -> list[Column] | None:
    """The CRD version's ``additionalPrinterColumns``; None when it declares none."""
    if crd is None:
        return None
    for v in (crd.get("spec") or {}).get("versions") or ():
        if v.get("name") != version:
            continue
        declared = v.get("additionalPrinterColumns") or ()
        if not declared:
            return None
        out: list[Column] = []
        for c in declared:
            path = str(c.get("jsonPath") or "")
            kind = str(c.get("type") or "string")
            out.append(
                (
                    {
                        "name": c.get("name", ""),
                        "type": kind,
                        "format": c.get("format", ""),
                        "priority": int(c.get("priority") or 0),
                        "description": c.get("description", ""),
                    },
                    lambda o, path=path: jsonpath(o, path),
                )
            )
        return out
    return None
