"""``zeroserve describe``'s text, as ``kubectl describe`` lays it out: aligned
``Key:  value`` lines, indented sections, and the object's recent events last
(kubernetes ``staging/src/k8s.io/kubectl/pkg/describe/describe.go``; docs/local-mode.md,
"Logs and events"). Pure: objects and events in, text out; time is passed in.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Mapping, Sequence
from typing import Any

from zeroserve.local.podstatus import human_duration

Obj = Mapping[str, Any]
NONE = "<none>"


def parse_time(text: str) -> float | None:
    """An RFC 3339 UTC time (``2026-12-05T01:02:03Z``) as Unix time."""
    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except (TypeError, ValueError):
        return None


def _age(text: str, now: float) -> str:
    t = parse_time(text)
    return human_duration(now - t) if t is not None else NONE


def _fields(rows: Sequence[tuple[str, Any]], indent: str = "") -> list[str]:
    """``Key:  value`` lines, values aligned; a list value continues under the first."""
    width = max((len(k) for k, _ in rows), default=0) + 3  # "Key:" and two spaces
    out = []
    for key, value in rows:
        values = value if isinstance(value, list) else [value]
        values = [line for v in values for line in str(v).splitlines() or [""]] or [NONE]
        out.append(f"{indent}{key + ':':<{width}}{values[0]}".rstrip())
        out += [f"{indent}{'':<{width}}{v}" for v in values[1:]]
    return out


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """kubectl describe's tables: the header, a dashed rule, the rows."""
    rules = ["-" * len(h) for h in headers]
    grid = [list(headers), rules, *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in grid) for i in range(len(headers))]
    return [
        indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in grid
    ]


def _labels(meta: Obj) -> list[str]:
    return [f"{k}={v}" for k, v in sorted((meta.get("labels") or {}).items())] or [NONE]


def _annotations(meta: Obj) -> list[str]:
    return [f"{k}: {v}" for k, v in sorted((meta.get("annotations") or {}).items())] or [NONE]


def _head(obj: Obj, now: float) -> list[tuple[str, Any]]:
    meta = obj.get("metadata") or {}
    return [
        ("Name", meta.get("name", "")),
        ("Namespace", meta.get("namespace", "")),
        ("Labels", _labels(meta)),
        ("Annotations", _annotations(meta)),
        ("Age", _age(meta.get("creationTimestamp", ""), now)),
    ]


def conditions(obj: Obj, now: float) -> list[str]:
    items = (obj.get("status") or {}).get("conditions") or []
    if not items:
        return [f"Conditions:  {NONE}"]
    rows = [
        [
            str(c.get("type", "")),
            str(c.get("status", "")),
            str(c.get("reason", "")),
            _age(c.get("lastTransitionTime", ""), now),
            " ".join(str(c.get("message", "")).split()),
        ]
        for c in items
    ]
    return ["Conditions:", *_table(["Type", "Status", "Reason", "Age", "Message"], rows)]


def events(items: Sequence[Obj], now: float) -> list[str]:
    """kubectl describe's ``Events:`` table: Age is the last time, with ``(xN over
    AGE)`` for a repeated event."""
    if not items:
        return [f"Events:  {NONE}"]
    rows = []
    for e in items:
        age = _age(e.get("lastTimestamp", ""), now)
        if int(e.get("count", 1)) > 1:
            age += f" (x{e['count']} over {_age(e.get('firstTimestamp', ''), now)})"
        source = (e.get("source") or {}).get("component", "")
        rows.append([e.get("type", ""), e.get("reason", ""), age, source, e.get("message", "")])
    return ["Events:", *_table(["Type", "Reason", "Age", "From", "Message"], rows)]


def _traffic(status: Obj) -> list[str]:
    items = status.get("traffic") or []
    if not items:
        return [f"Traffic:  {NONE}"]
    rows = [
        [
            f"{t.get('percent', 0)}%",
            str(t.get("revisionName", "")) + (" (latest)" if t.get("latestRevision") else ""),
            str(t.get("tag", "")),
            str(t.get("url", "")),
        ]
        for t in items
    ]
    return ["Traffic:", *_table(["Percent", "Revision", "Tag", "URL"], rows)]


def _routed(status: Obj) -> list[tuple[str, Any]]:
    return [
        ("URL", status.get("url") or NONE),
        ("Address", (status.get("address") or {}).get("url") or NONE),
    ]


def describe_service(obj: Obj, evts: Sequence[Obj], now: float) -> str:
    """A Service: URL, its revisions, traffic, conditions, events. Also a Route (no
    revisions of its own) and a Configuration (no traffic)."""
    status = obj.get("status") or {}
    kind = obj.get("kind", "")
    rows = _head(obj, now)
    if kind != "Configuration":
        rows += _routed(status)
    if kind != "Route":
        rows += [
            ("Latest Created Revision", status.get("latestCreatedRevisionName") or NONE),
            ("Latest Ready Revision", status.get("latestReadyRevisionName") or NONE),
        ]
    lines = _fields(rows)
    if kind != "Configuration":
        lines += _traffic(status)
    return "\n".join([*lines, *conditions(obj, now), *events(evts, now)])


def _env_value(e: Obj) -> str:
    """An env entry's value, or where it comes from (kubectl's ``<set to the key ...>``
    in short)."""
    if "value" in e:
        return str(e["value"])
    source = next(iter(e.get("valueFrom") or {}), "")
    return f"<from {source}>" if source else ""


def describe_revision(obj: Obj, pods: Sequence[Obj], evts: Sequence[Obj], now: float) -> str:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    labels = meta.get("labels") or {}
    cc = spec.get("containerConcurrency", 0)
    rows = [
        *_head(obj, now),
        ("Service", labels.get("serving.knative.dev/service") or NONE),
        ("Configuration", labels.get("serving.knative.dev/configuration") or NONE),
        ("Container Concurrency", f"{cc}" + (" (unlimited)" if not cc else "")),
        ("Timeout", f"{spec['timeoutSeconds']}s" if "timeoutSeconds" in spec else NONE),
        (
            "Replicas",
            f"{status.get('desiredReplicas', 0)} desired | {status.get('actualReplicas', 0)} ready",
        ),
    ]
    lines = _fields(rows)
    lines.append("Containers:")
    for c in spec.get("containers") or []:
        lines.append(f"  {c.get('name', '')}:")
        crow: list[tuple[str, Any]] = [("Image", c.get("image") or NONE)]
        if c.get("command"):
            crow.append(("Command", list(c["command"])))
        if c.get("args"):
            crow.append(("Args", list(c["args"])))
        ports = [str(p.get("containerPort")) for p in c.get("ports") or []]
        crow.append(("Port", ", ".join(ports) or NONE))
        env = [f"{e.get('name')}: {_env_value(e)}" for e in c.get("env") or []]
        crow.append(("Environment", env or NONE))
        lines += _fields(crow, "    ")
    if pods:
        rows2 = []
        for p in pods:
            pstatus = p.get("status") or {}
            cs = pstatus.get("containerStatuses") or []
            ready = f"{sum(1 for c in cs if c.get('ready'))}/{len(cs)}"
            restarts = str(sum(int(c.get("restartCount", 0)) for c in cs))
            rows2.append([p["metadata"]["name"], ready, pstatus.get("phase", ""), restarts])
        lines += ["Pods:", *_table(["Name", "Ready", "Phase", "Restarts"], rows2)]
    else:
        lines.append(f"Pods:  {NONE}")
    return "\n".join([*lines, *conditions(obj, now), *events(evts, now)])


def _state(state: Obj, now: float) -> list[tuple[str, Any]]:
    """A container's ``State:`` or ``Last State:`` and its details."""
    if not state:
        return []
    kind, body = next(iter(state.items()))
    rows: list[tuple[str, Any]] = [("", kind.capitalize())]
    for key, label in (
        ("reason", "Reason"),
        ("message", "Message"),
        ("exitCode", "Exit Code"),
        ("startedAt", "Started"),
        ("finishedAt", "Finished"),
    ):
        if key in body:
            rows.append((label, body[key]))
    return rows


def describe_pod(obj: Obj, evts: Sequence[Obj], now: float) -> str:
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    labels = meta.get("labels") or {}
    phase = "Terminating" if meta.get("deletionTimestamp") else status.get("phase", "")
    rows = [
        *_head(obj, now),
        ("Start Time", status.get("startTime") or NONE),
        ("Status", phase),
        ("IP", status.get("podIP") or NONE),
        (
            "Controlled By",
            f"Revision/{labels['serving.knative.dev/revision']}"
            if "serving.knative.dev/revision" in labels
            else NONE,
        ),
    ]
    lines = _fields(rows)
    for title, key in (
        ("Init Containers", "initContainerStatuses"),
        ("Containers", "containerStatuses"),
    ):
        items = status.get(key) or []
        if not items and key == "initContainerStatuses":
            continue
        lines.append(f"{title}:" if items else f"{title}:  {NONE}")
        for c in items:
            lines.append(f"  {c.get('name', '')}:")
            crow: list[tuple[str, Any]] = [("Image", c.get("image") or NONE)]
            for label, st in (
                ("State", c.get("state") or {}),
                ("Last State", c.get("lastState") or {}),
            ):
                parts = _state(st, now)
                if not parts:
                    crow.append((label, "Waiting" if label == "State" else NONE))
                    continue
                crow.append((label, parts[0][1]))
                crow += [(f"  {k}", v) for k, v in parts[1:]]
            crow += [
                ("Ready", str(bool(c.get("ready")))),
                ("Restart Count", c.get("restartCount", 0)),
            ]
            lines += _fields(crow, "    ")
    conds = status.get("conditions") or []
    if conds:
        lines += [
            "Conditions:",
            *_table(["Type", "Status"], [[c.get("type", ""), c.get("status", "")] for c in conds]),
        ]
    return "\n".join([*lines, *events(evts, now)])
