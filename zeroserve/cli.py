"""The ``zeroserve`` command: ``up`` runs everything locally; ``apply``, ``get``,
``delete``, ``wait`` and ``tree`` talk to its control API like kubectl to an API server
(errors on stderr and a non-zero exit, as kubectl's); ``replica`` runs one command
behind a queue-proxy."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import re
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvloop
import yaml

from . import describe, forksafe, watch
from .local import access
from .local.podstatus import human_duration
from .local.replica import (
    Replica,
    ReplicaError,
    ReplicaSpec,
    StartError,
    log_tail,
    resolve_command,
)
from .local.sandbox.network import DEFAULT_POD_CIDR
from .serving import kinds

DEFAULT_SERVER = "http://127.0.0.1:8090"
DEFAULT_WAIT_TIMEOUT = 60.0
"""``wait`` and ``apply --wait``: kubectl's default is 30 s, but a local first start of
an app that installs or compiles something can take longer."""
WAIT_POLL_SECONDS = 0.25
"""How often ``wait`` reads the object: the control API has no watch of objects (only
the data plane's long-poll), and a read is a dictionary lookup on loopback."""
SYNC_SECONDS = 10.0
"""How long a met condition waits for the activators to route by the new state."""
WAITABLE = frozenset(
    {
        kinds.SERVICE,
        kinds.CONFIGURATION,
        kinds.REVISION,
        kinds.ROUTE,
        kinds.DOMAIN_MAPPING,
    }
)
"""The kinds with conditions (ConfigMaps and Secrets have none to wait for)."""


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|h|m|s)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration(text: str) -> float:
    """Seconds of a ``--timeout``: a Go duration as kubectl takes (``30s``, ``2m``,
    ``1m30s``, ``1.5h``, ``500ms``), or a plain number of seconds."""
    t = text.strip()
    try:
        seconds = float(t)
    except ValueError:
        pos, seconds = 0, 0.0
        for m in _DURATION_PART.finditer(t):
            if m.start() != pos:
                break
            seconds += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
            pos = m.end()
        if pos != len(t) or not t:
            raise argparse.ArgumentTypeError(
                f"invalid duration {text!r} (give 30s, 2m, 1m30s, or seconds)"
            ) from None
    if not math.isfinite(seconds) or seconds < 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: not a time >= 0")
    return seconds


def condition(text: str) -> tuple[str, str]:
    """``--for condition=NAME[=VALUE]`` -> (NAME, VALUE); VALUE defaults to True, as
    kubectl's."""
    what, _, rest = text.partition("=")
    if what.lower() != "condition" or not rest:
        raise argparse.ArgumentTypeError(
            f"{text!r}: only condition=NAME or condition=NAME=VALUE can be waited for "
            "(e.g. condition=Ready)"
        )
    name, _, value = rest.partition("=")
    if not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: the condition has no name")
    return name.strip(), value.strip() or "True"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="zeroserve", description="Knative-Serving-style serverless, locally."
    )
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser(
        "up",
        help="run controller, autoscaler, activator and replicas here; apply FILEs",
        description="Run the whole system in the foreground and apply the manifests given. "
        "Ctrl-C stops everything cleanly.",
    )
    up.add_argument(
        "files", nargs="*", type=Path, metavar="FILE", help="manifests to apply at start"
    )
    up.add_argument(
        "--port",
        type=int,
        default=8080,
        help="the ingress (the activator's listener; default 8080)",
    )
    up.add_argument(
        "--local-port",
        type=int,
        default=8081,
        help="the local gateway, for cluster-local services (default 8081; 0 = any free port)",
    )
    up.add_argument("--control-port", type=int, default=8090, help="control API (default 8090)")
    up.add_argument(
        "--host",
        default="127.0.0.1",
        help="address of the ingress listeners, --port and --local-port (default 127.0.0.1); "
        "every other listener stays on loopback",
    )
    up.add_argument(
        "--control-host",
        default="127.0.0.1",
        help="address of the control API (default 127.0.0.1, whatever --host says; "
        "a warning when not loopback)",
    )
    up.add_argument("--domain", help="default domain of service URLs (default localhost)")
    up.add_argument(
        "--logs",
        type=Path,
        help="directory for component and replica logs (default: one per run under "
        "$XDG_STATE_HOME/zeroserve/logs, else ~/.local/state/zeroserve/logs, where the "
        "last 5 runs are kept)",
    )
    up.add_argument(
        "--activators",
        type=int,
        default=1,
        help="activator processes sharing the ingress port (default 1)",
    )
    up.add_argument(
        "--activation-timeout",
        type=float,
        default=120.0,
        help="seconds a request may wait for a replica before a 503 (default 120)",
    )
    up.add_argument(
        "--max-starting",
        type=int,
        metavar="N",
        help="replicas of one revision starting at once; the others are Pending "
        "(default: one per CPU, at least 2)",
    )
    up.add_argument(
        "--standby-queue-proxies",
        type=int,
        default=2,
        metavar="N",
        help="queue-proxies (and, in pod sandboxes, pod networks) kept made ahead, each "
        "taken by the next replica that starts, so a cold start does not wait for them "
        "(default 2; 0: none)",
    )
    up.add_argument(
        "--sandbox",
        choices=("auto", "pod", "process"),
        default="auto",
        help="where replicas run: 'pod' gives each its own network namespace, IP, volumes "
        "and cgroup limits (needs root on Linux); 'process' runs plain processes on "
        "loopback; 'auto' (default) is 'pod' where it can be made",
    )
    up.add_argument(
        "--pod-cidr",
        default=DEFAULT_POD_CIDR,
        help=f"IPv4 range of pod sandbox IPs; each run takes a free /24 in it "
        f"(default {DEFAULT_POD_CIDR}, a range reserved for benchmarking, RFC 2544)",
    )

    def client(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument(
            "--server", default=DEFAULT_SERVER, help=f"control API (default {DEFAULT_SERVER})"
        )
        cmd.add_argument(
            "--token",
            help=f"the control API's token (default ${access.CLIENT_TOKEN_ENV}, else the file "
            "zeroserve up wrote for --server's port)",
        )

    def request_timeout(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument(
            "--request-timeout",
            type=duration,
            default=0.0,
            help="stop following or watching after this long: 30s, 2m, or seconds "
            "(default 0: until Ctrl-C)",
        )

    apply = sub.add_parser("apply", help="create or update objects from a manifest")
    apply.add_argument(
        "-f", "--filename", required=True, type=Path, action="append", help="manifest (repeatable)"
    )
    apply.add_argument(
        "--wait",
        action="store_true",
        help="then wait until every object applied that has a Ready condition is Ready for "
        "its current generation (a failed revision ends the wait at once)",
    )
    apply.add_argument(
        "--timeout",
        type=duration,
        default=DEFAULT_WAIT_TIMEOUT,
        help="how long --wait waits: 30s, 2m, 1m30s or seconds (default 60s)",
    )
    client(apply)

    delete = sub.add_parser(
        "delete", help="delete objects: -f FILE, or KIND NAME (ksvc, cfg, rt, cm, secret)"
    )
    delete.add_argument(
        "-f", "--filename", type=Path, action="append", help="manifest whose objects to delete"
    )
    delete.add_argument("args", nargs="*", metavar="KIND NAME")
    delete.add_argument("-n", "--namespace", default="default")
    client(delete)

    get = sub.add_parser(
        "get",
        help="list objects: ksvc, configurations, revisions, routes, pods, configmaps, secrets",
    )
    get.add_argument("kind")
    get.add_argument("name", nargs="?")
    get.add_argument("-n", "--namespace", default="default", help="namespace (default: default)")
    get.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    get.add_argument(
        "-o",
        "--output",
        choices=["table", "wide", "json", "yaml"],
        default="table",
        help="wide adds MESSAGE (why not Ready), and a pod's IP",
    )
    get.add_argument(
        "-w",
        "--watch",
        action="store_true",
        help="after the table, print a row each time an object changes, until Ctrl-C",
    )
    get.add_argument(
        "--watch-only",
        action="store_true",
        help="print only the rows of objects as they change, not the table first",
    )
    request_timeout(get)
    client(get)

    wait = sub.add_parser(
        "wait",
        help="wait for a condition of an object (kubectl wait): ksvc, configuration, "
        "revision, route, domainmapping",
        description="Wait until the object's condition (default Ready) has the status wanted "
        "(default True) for its current generation. A Ready condition that turns False "
        "(a failed revision) ends the wait at once, with its reason, unless False is "
        "what is waited for.",
    )
    wait.add_argument("kind")
    wait.add_argument("name")
    wait.add_argument("-n", "--namespace", default="default", help="namespace (default: default)")
    wait.add_argument(
        "--for",
        dest="condition",
        type=condition,
        default=("Ready", "True"),
        metavar="condition=NAME[=VALUE]",
        help="the condition (case-insensitive) and its status (default condition=Ready)",
    )
    wait.add_argument(
        "--timeout",
        type=duration,
        default=DEFAULT_WAIT_TIMEOUT,
        help="30s, 2m, 1m30s or seconds (default 60s; 0: check once)",
    )
    client(wait)

    tree = sub.add_parser(
        "tree", help="a Service's objects: Configuration, Revisions and replicas, Route"
    )
    tree.add_argument("kind", choices=["ksvc", "kservice", "service", "services"])
    tree.add_argument("name")
    tree.add_argument("-n", "--namespace", default="default")
    client(tree)

    logs = sub.add_parser(
        "logs",
        help="print a container's output: pod/NAME, revision/NAME or ksvc/NAME (kubectl logs)",
        description="Print the output of a container of a pod (default: its first, the user "
        "container); revision/NAME and ksvc/NAME pick one of their pods, as kubectl logs "
        "deployment/NAME does.",
    )
    logs.add_argument("target", metavar="pod/NAME|revision/NAME|ksvc/NAME")
    logs.add_argument("-n", "--namespace", default="default", help="namespace (default: default)")
    logs.add_argument(
        "-c", "--container", help="the container: user-container (default), queue-proxy, ..."
    )
    logs.add_argument(
        "-f", "--follow", action="store_true", help="keep printing new lines until Ctrl-C"
    )
    logs.add_argument(
        "--since",
        type=duration,
        help="only lines written in the last DURATION (5s, 2m, 1h); one second precision",
    )
    logs.add_argument(
        "--tail", type=int, default=-1, help="the last N lines only (default -1: all)"
    )
    request_timeout(logs)
    client(logs)

    describe = sub.add_parser(
        "describe",
        help="show an object in detail with its recent events: ksvc, configuration, "
        "revision, route, pod",
    )
    describe.add_argument("kind")
    describe.add_argument("name")
    describe.add_argument(
        "-n", "--namespace", default="default", help="namespace (default: default)"
    )
    client(describe)

    sub.add_parser(
        "controller",
        help="run the in-cluster controller (an alias of `python -m controller`)",
        add_help=False,
    )

    r = sub.add_parser(
        "replica",
        help="run one command as a replica: the app behind a queue-proxy",
        description="Start CMD with $PORT like a Knative container, put a queue-proxy in front of it, "
        "and serve until Ctrl-C (then drain and stop both, pod-style). A CMD of python or python3 "
        "is the interpreter zeroserve runs in, as for `zeroserve up`'s containers. If the app "
        "fails, its last lines of output are shown.",
    )
    r.add_argument(
        "--port", type=int, default=8012, help="queue-proxy serving port (default 8012; 0 = any)"
    )
    r.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    r.add_argument(
        "--concurrency",
        type=int,
        default=0,
        metavar="CC",
        help="containerConcurrency: requests at once at the app (default 0 = unlimited)",
    )
    r.add_argument(
        "--timeout", type=float, default=300, help="request timeout in seconds (default 300)"
    )
    r.add_argument(
        "--drain",
        type=float,
        default=1.0,
        help="quiet period before stopping, seconds (default 1; Knative's is 30)",
    )
    r.add_argument(
        "--revision", default="helloworld-go-00001", help="revision name reported in stats"
    )
    r.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="environment of the app"
    )
    r.add_argument(
        "--logs",
        type=Path,
        help="write app and queue-proxy logs into this directory (default: a temporary one, "
        "removed at exit)",
    )
    r.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    return p


# -- client commands ------------------------------------------------------------


class ClientError(Exception):
    """A client command failed; its message is printed as the one line of the error."""


class NotFoundError(ClientError):
    """The control API answered 404: printed as kubectl's ``Error from server
    (NotFound): ...``."""


class BadRequestError(ClientError):
    """The pod log API refused the request (400): kubectl's ``Error from server
    (BadRequest): ...``."""


def _token(server: str, given: str | None) -> str:
    """The control API's token: ``--token``, ``$ZEROSERVE_TOKEN``, or the file of
    ``server``'s port; a ``ClientError`` saying what to do when there is none."""
    if given:
        return given
    try:
        token = access.find_token(server)
    except access.TokenFileError as e:
        raise ClientError(
            f"{e}; give --token or set {access.CLIENT_TOKEN_ENV} (the token is in that file, "
            "which only the user who ran `zeroserve up` can read)"
        ) from None
    if token is None:
        path = access.token_path(access.url_port(server))
        raise ClientError(
            f"no token for the control API at {server}: {path} does not exist. Is "
            f"`zeroserve up` running on port {access.url_port(server)}, as this user "
            "(--server names its control API)? Otherwise give --token or set "
            f"{access.CLIENT_TOKEN_ENV}"
        )
    return token


def _call(server: str, token: str | None, method: str, path: str, **kw: Any) -> Any:
    headers = access.headers(_token(server, token))
    try:
        r = httpx.request(method, server.rstrip("/") + path, timeout=30, headers=headers, **kw)
    except httpx.HTTPError as e:
        raise ClientError(
            f"cannot reach the control API at {server} ({e}); is `zeroserve up` running?"
        ) from None
    data = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    if r.status_code == 401:
        raise ClientError(
            f"the control API at {server} refused the token (401): is the token file, "
            f"--token or {access.CLIENT_TOKEN_ENV} from another `zeroserve up`? "
            f"({data.get('error', '')})"
        )
    if r.status_code == 422:
        raise ClientError("\n".join(data.get("errors", [])))
    if r.status_code == 404:
        raise NotFoundError(data.get("error") or f"{method} {path}: 404 {r.reason_phrase}")
    if r.status_code >= 400:
        raise ClientError(data.get("error") or f"{r.status_code} {r.reason_phrase}")
    return data


def _read(path: Path) -> str:
    try:
        return sys.stdin.read() if str(path) == "-" else path.read_text()
    except OSError as e:
        raise ClientError(f"cannot read {path}: {e.strerror}") from None


def cmd_apply(args: argparse.Namespace) -> int:
    applied: list[Target] = []
    for f in args.filename:
        data = _call(
            args.server, args.token, "POST", "/v1/apply", json={"file": str(f), "yaml": _read(f)}
        )
        for line in data["lines"]:
            print(line, flush=True)
        for o in data["objects"]:
            kind = kinds.kind_of(o["kind"])
            if kind in WAITABLE:
                applied.append(Target(kind, o["namespace"], o["name"]))
    if args.wait:
        _wait(args.server, args.token, applied, ("Ready", "True"), args.timeout)
    return 0


def _print_error(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_delete(args: argparse.Namespace) -> int:
    if args.filename:
        # kubectl: each object that is not there is an error on stderr, the others are
        # deleted all the same, and the exit code says something failed.
        code = 0
        for f in args.filename:
            data = _call(
                args.server,
                args.token,
                "POST",
                "/v1/delete",
                json={"file": str(f), "yaml": _read(f)},
            )
            for line in data["lines"]:
                print(line, flush=True)
            for error in data["errors"]:
                _print_error(f"Error from server (NotFound): {error}")
                code = 1
        return code
    if len(args.args) != 2:
        raise ClientError("usage: zeroserve delete -f FILE, or zeroserve delete KIND NAME [-n NS]")
    kind, name = args.args
    data = _call(args.server, args.token, "DELETE", f"/v1/objects/{kind}/{args.namespace}/{name}")
    for line in data["lines"]:
        print(line)
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    if args.all_namespaces and args.name:
        # kubectl's words
        raise ClientError("a resource cannot be retrieved by name across all namespaces")
    namespace = None if args.all_namespaces else args.namespace
    watching = args.watch or args.watch_only
    if watching and args.output not in ("table", "wide"):
        raise ClientError("--watch and --watch-only print tables: give -o wide or no -o")
    if args.kind.lower() in EVENT_NAMES:
        if watching:
            raise ClientError("events cannot be watched; run get events again")
        return _get_events(args, namespace)
    params = {k: v for k, v in (("namespace", namespace), ("name", args.name)) if v}
    if args.output in ("table", "wide"):
        if args.output == "wide":
            params["wide"] = "1"
        if watching:
            return watch.watch_table(
                lambda: _call(
                    args.server, args.token, "GET", f"/v1/table/{args.kind}", params=params
                ),
                lambda since, wait: _call(
                    args.server,
                    args.token,
                    "GET",
                    "/v1/watch",
                    params={"since": str(since), "wait": str(wait)},
                )["version"],
                out=sys.stdout,
                namespace=namespace,
                watch_only=args.watch_only,
                timeout=args.request_timeout,
            )
        data = _call(args.server, args.token, "GET", f"/v1/table/{args.kind}", params=params)
        rows = data["rows"]
        if not rows:
            print(
                "No resources found."
                if namespace is None
                else f"No resources found in {namespace} namespace."
            )
            return 0
        print(format_table(data["headers"], rows))
        return 0
    data = _call(args.server, args.token, "GET", f"/v1/objects/{args.kind}", params=params)
    items = data["items"]
    doc: Any = (
        items[0]
        if args.name and len(items) == 1
        else {"apiVersion": "v1", "kind": "List", "items": items}
    )
    if args.output == "json":
        print(json.dumps(doc, indent=2))
    else:
        print(yaml.safe_dump(doc, sort_keys=False), end="")
    return 0


# -- events, describe, logs ---------------------------------------------------------

EVENT_NAMES = frozenset({"events", "event", "ev"})
POD_NAMES = frozenset({"pods", "pod", "po"})
REVISION_LABEL = "serving.knative.dev/revision"
SERVICE_LABEL = "serving.knative.dev/service"


def _events(
    server: str, token: str | None, namespace: str | None, refs: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    params: list[tuple[str, str]] = [("object", f"{kind}/{name}") for kind, name in refs]
    if namespace:
        params.append(("namespace", namespace))
    return list(_call(server, token, "GET", "/v1/events", params=params)["items"])


def events_table(items: list[dict[str, Any]], now: float, *, all_namespaces: bool) -> str:
    """``kubectl get events``: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE (NAMESPACE first
    with ``-A``), oldest first."""
    headers = ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    rows = []
    for e in items:
        inv = e["involvedObject"]
        last = describe.parse_time(e.get("lastTimestamp", ""))
        row = [
            human_duration(now - last) if last is not None else "<unknown>",
            e.get("type", ""),
            e.get("reason", ""),
            f"{str(inv.get('kind', '')).lower()}/{inv.get('name', '')}",
            e.get("message", ""),
        ]
        if all_namespaces:
            row.insert(0, inv.get("namespace", ""))
        rows.append(row)
    if all_namespaces:
        headers.insert(0, "NAMESPACE")
    return format_table(headers, rows)


def _get_events(args: argparse.Namespace, namespace: str | None) -> int:
    if args.name:
        raise ClientError("events are listed, not fetched by name: zeroserve get events [-n NS]")
    items = _events(args.server, args.token, namespace, [])
    if args.output in ("json", "yaml"):
        doc = {"apiVersion": "v1", "kind": "List", "items": items}
        print(
            json.dumps(doc, indent=2)
            if args.output == "json"
            else yaml.safe_dump(doc, sort_keys=False),
            end="\n" if args.output == "json" else "",
        )
        return 0
    if not items:
        print(
            "No resources found."
            if namespace is None
            else f"No resources found in {namespace} namespace."
        )
        return 0
    print(events_table(items, time.time(), all_namespaces=namespace is None))
    return 0


def _one(server: str, token: str | None, plural: str, namespace: str, name: str) -> dict[str, Any]:
    params = {"namespace": namespace, "name": name}
    return dict(_call(server, token, "GET", f"/v1/objects/{plural}", params=params)["items"][0])


def _pods(
    server: str, token: str | None, namespace: str, label: str, value: str
) -> list[dict[str, Any]]:
    items = _call(server, token, "GET", "/v1/objects/pods", params={"namespace": namespace})[
        "items"
    ]
    return [p for p in items if (p["metadata"].get("labels") or {}).get(label) == value]


def cmd_describe(args: argparse.Namespace) -> int:
    server, token, ns, name = (
        args.server,
        _token(args.server, args.token),
        args.namespace,
        args.name,
    )
    now = time.time()
    if args.kind.lower() in POD_NAMES:
        pod = _one(server, token, "pods", ns, name)
        print(describe.describe_pod(pod, _events(server, token, ns, [("Pod", name)]), now))
        return 0
    try:
        kind = kinds.resolve_kind(args.kind)
    except kinds.UnknownKind as e:
        raise ClientError(str(e)) from None
    if kind not in (kinds.SERVICE, kinds.CONFIGURATION, kinds.REVISION, kinds.ROUTE):
        raise ClientError(
            f"describe shows services, configurations, revisions, routes and pods, not {kind.plural}"
        )
    obj = _one(server, token, kind.plural, ns, name)
    if kind is kinds.REVISION:
        # the revision's replica counts are its Deployment's: its events belong here too
        evts = _events(
            server, token, ns, [("Revision", name), ("Deployment", f"{name}-deployment")]
        )
        pods = _pods(server, token, ns, REVISION_LABEL, name)
        print(describe.describe_revision(obj, pods, evts, now))
    else:
        evts = _events(server, token, ns, [(kind.name, name)])
        print(describe.describe_service(obj, evts, now))
    return 0


LOG_KINDS = {
    **dict.fromkeys(("pod", "pods", "po"), "pod"),
    **dict.fromkeys(("revision", "revisions", "rev"), "revision"),
    **dict.fromkeys(("ksvc", "kservice", "kservices", "service", "services"), "service"),
}


def _log_order(pod: dict[str, Any]) -> tuple[int, int, int, str]:
    """kubectl's choice of a pod to log (``podutils.ByLogging``): running before
    pending, ready before not, more restarts first, then the oldest."""
    st = pod.get("status") or {}
    cs = st.get("containerStatuses") or []
    ready = bool(cs) and all(c.get("ready") for c in cs)
    restarts = sum(int(c.get("restartCount", 0)) for c in cs)
    created = str(pod["metadata"].get("creationTimestamp", ""))
    return (0 if st.get("phase") == "Running" else 1, 0 if ready else 1, -restarts, created)


def pick_pod(server: str, token: str | None, target: str, namespace: str) -> dict[str, Any]:
    """The pod ``zeroserve logs TARGET`` reads: the one named, or one of a revision's or a
    Service's (saying which on stderr when there is a choice, as kubectl)."""
    what, sep, name = target.partition("/")
    if not sep:
        what, name = "pod", target  # kubectl: a bare name is a pod
    kind = LOG_KINDS.get(what.lower())
    if kind is None or not name:
        raise ClientError(
            f"{target!r}: give pod/NAME, revision/NAME or ksvc/NAME (or a pod's NAME)"
        )
    if kind == "pod":
        return _one(server, token, "pods", namespace, name)
    plural, label = (
        ("revisions", REVISION_LABEL) if kind == "revision" else ("services", SERVICE_LABEL)
    )
    _one(server, token, plural, namespace, name)  # NotFound as kubectl says it
    pods = sorted(_pods(server, token, namespace, label, name), key=_log_order)
    if not pods:
        raise ClientError(
            f"{what}/{name} has no pods: it is scaled to zero (a request to it starts one)"
        )
    chosen = pods[0]
    if len(pods) > 1:
        _print_error(f"Found {len(pods)} pods, using pod/{chosen['metadata']['name']}")
    return chosen


def cmd_logs(args: argparse.Namespace) -> int:
    token = _token(args.server, args.token)
    pod = pick_pod(args.server, token, args.target, args.namespace)
    name = pod["metadata"]["name"]
    spec = pod.get("spec") or {}
    names = [c["name"] for c in spec.get("containers") or []]
    if args.container is None and len(names) > 1:
        inits = [f"{c['name']} (init)" for c in spec.get("initContainers") or []]
        _print_error(f'Defaulted container "{names[0]}" out of: {", ".join([*names, *inits])}')
    params = {"container": args.container or (names[0] if names else "")}
    if args.since is not None:
        params["sinceSeconds"] = str(args.since)
    if args.tail >= 0:
        params["tailLines"] = str(args.tail)
    if args.follow:
        params["follow"] = "1"
    url = f"{args.server.rstrip('/')}/v1/logs/{args.namespace}/{name}"
    timeout = args.request_timeout or None
    deadline = time.monotonic() + timeout if timeout else None
    try:
        with httpx.stream(
            "GET",
            url,
            params={k: v for k, v in params.items() if v},
            headers=access.headers(token),
            timeout=httpx.Timeout(30, read=timeout if timeout else (None if args.follow else 30)),
        ) as r:
            if r.status_code >= 400:
                r.read()
                data = (
                    r.json()
                    if r.headers.get("content-type", "").startswith("application/json")
                    else {}
                )
                message = data.get("error") or f"{r.status_code} {r.reason_phrase}"
                if r.status_code == 404:
                    raise NotFoundError(message)
                if r.status_code == 400:
                    raise BadRequestError(message)
                raise ClientError(message)
            shared = r.headers.get("X-Zeroserve-Shared-Log")
            if shared:
                _print_error(
                    f"warning: locally, containers {shared.replace(',', ', ')} write one log: "
                    "their lines are mixed"
                )
            out = sys.stdout.buffer
            for chunk in r.iter_raw():
                out.write(chunk)
                out.flush()
                if deadline is not None and time.monotonic() >= deadline:
                    break
    except httpx.ReadTimeout:
        if not deadline:
            raise ClientError(f"the control API at {args.server} stopped answering") from None
    except httpx.HTTPError as e:
        raise ClientError(
            f"cannot reach the control API at {args.server} ({e}); is `zeroserve up` running?"
        ) from None
    return 0


@dataclass(frozen=True)
class Target:
    """One object to wait for."""

    kind: kinds.Kind
    namespace: str
    name: str

    def __str__(self) -> str:
        # kubectl wait's name of it: service.serving.knative.dev/hello
        return f"{self.kind.qualified}/{self.name}"


@dataclass(frozen=True)
class Verdict:
    met: bool
    failure: str = ""
    """Why waiting longer is in vain (the Ready condition's reason and message)."""


def check_condition(obj: dict[str, Any], name: str, want: str) -> Verdict:
    """Whether ``obj``'s condition ``name`` has the status ``want`` for its current
    generation, as kubectl wait decides (names and statuses compared case-insensitively;
    a status whose observedGeneration is behind the object's generation does not count).

    Waiting for Ready=True also needs a Service's or Configuration's latest created
    revision to be its latest ready one (``kn``'s test: the new template is what
    serves). A Ready that is False for the current generation is a failure: locally a
    Ready turns False only when a revision could not start, so the wait ends at once
    with the reason (kubectl would wait out its timeout)."""
    meta, status = obj.get("metadata", {}), obj.get("status", {})
    conditions = status.get("conditions", ())
    found = next((c for c in conditions if str(c.get("type", "")).lower() == name.lower()), None)
    if found is None:
        return Verdict(False)
    generation = meta.get("generation")
    observed = found.get("observedGeneration", status.get("observedGeneration"))
    if generation is not None and observed is not None and observed < generation:
        return Verdict(False)
    have = str(found.get("status", ""))
    ready_true = name.lower() == "ready" and want.lower() == "true"
    if ready_true and have == "False":
        why = ": ".join(x for x in (found.get("reason", ""), found.get("message", "")) if x)
        return Verdict(False, failure=why or "Ready is False")
    if have.lower() != want.lower():
        return Verdict(False)
    if ready_true and "latestCreatedRevisionName" in status:
        created = status["latestCreatedRevisionName"]
        return Verdict(status.get("latestReadyRevisionName") == created)
    return Verdict(True)


def _wait(
    server: str, token: str | None, targets: list[Target], cond: tuple[str, str], timeout: float
) -> None:
    """Poll the objects until each one's condition is met (printing kubectl's ``... condition
    met`` for it), one fails, or ``timeout`` passes; then wait until the activators route by
    the state read, so a request sent next finds what was waited for."""
    token = _token(server, token)
    deadline = time.monotonic() + timeout
    pending = list(targets)
    while True:
        for t in list(pending):
            params = {"namespace": t.namespace, "name": t.name}
            objs = _call(server, token, "GET", f"/v1/objects/{t.kind.plural}", params=params)
            verdict = check_condition(objs["items"][0], *cond)
            if verdict.failure:
                raise ClientError(f"{t} is not ready: {verdict.failure}")
            if verdict.met:
                pending.remove(t)
                print(f"{t} condition met", flush=True)
        left = deadline - time.monotonic()
        if not pending or left <= 0:
            break
        time.sleep(min(WAIT_POLL_SECONDS, left))
    if pending:
        on = ", ".join(f"{t.kind.plural}/{t.name}" for t in pending)
        raise ClientError(f"timed out waiting for the condition on {on}")
    if targets:
        within = max(1.0, min(SYNC_SECONDS, deadline - time.monotonic()))
        synced = _call(server, token, "GET", "/v1/synced", params={"within": str(within)})
        if not synced["synced"]:
            _print_error(
                f"warning: the activators have not applied the new state within {within:.0f}s"
            )


def cmd_wait(args: argparse.Namespace) -> int:
    try:
        kind = kinds.resolve_kind(args.kind)
    except kinds.UnknownKind as e:
        raise ClientError(str(e)) from None
    if kind not in WAITABLE:
        raise ClientError(f"{kind.plural} have no conditions to wait for")
    _wait(
        args.server,
        args.token,
        [Target(kind, args.namespace, args.name)],
        args.condition,
        args.timeout,
    )
    return 0


def cmd_tree(args: argparse.Namespace) -> int:
    data = _call(args.server, args.token, "GET", f"/v1/tree/{args.namespace}/{args.name}")
    print(format_tree(data))
    return 0


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    lines = [
        "   ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip()
        for row in [headers, *rows]
    ]
    return "\n".join(lines)


def format_tree(tree: dict[str, Any]) -> str:
    """A Service's objects, drawn like ``kubectl tree``."""
    svc, cfg, route = tree["service"], tree.get("configuration"), tree.get("route")
    ns = svc.get("namespace", "")
    rows: list[tuple[str, str, str]] = [
        (f"Service/{svc['name']}", svc.get("ready", ""), svc.get("reason", ""))
    ]
    parts = []
    if cfg is not None:
        parts.append(("cfg", cfg))
    if route is not None:
        parts.append(("route", route))
    for i, (what, obj) in enumerate(parts):
        last = i == len(parts) - 1
        branch, indent = ("└─", "  ") if last else ("├─", "│ ")
        if what == "route":
            rows.append(
                (f"{branch}Route/{obj['name']}", obj.get("ready", ""), obj.get("reason", ""))
            )
            continue
        rows.append(
            (f"{branch}Configuration/{obj['name']}", obj.get("ready", ""), obj.get("reason", ""))
        )
        revisions = tree.get("revisions", [])
        for j, rev in enumerate(revisions):
            rlast = j == len(revisions) - 1
            rb, ri = ("└─", "  ") if rlast else ("├─", "│ ")
            rows.append(
                (f"{indent}{rb}Revision/{rev['name']}", rev.get("ready", ""), rev.get("reason", ""))
            )
            pods = rev.get("pods", [])
            for k, pod in enumerate(pods):
                pb = "└─" if k == len(pods) - 1 else "├─"
                rows.append(
                    (
                        f"{indent}{ri}{pb}Pod/{pod['name']}",
                        "True" if pod.get("ready") else "False",
                        pod.get("status", ""),
                    )
                )
    width = max(len(r[0]) for r in rows) + 2
    lines = [f"{'NAMESPACE':<10} {'NAME':<{width}} {'READY':<6} REASON"]
    lines += [
        f"{ns:<10} {name:<{width}} {ready:<6} {reason}".rstrip() for name, ready, reason in rows
    ]
    return "\n".join(lines)


# -- replica --------------------------------------------------------------------


REPLICA_TAIL_LINES = 10
"""How many of the app's last lines of output ``zeroserve replica`` shows when it fails."""


def _app_failed(what: str, log: Path, start: int, *, ran: bool = True) -> None:
    """Say on stderr why the app failed, with its last lines of output (``ran``: its
    command was started at all)."""
    print(f"zeroserve replica: {what}", file=sys.stderr)
    if not ran:
        return
    tail = log_tail(log, REPLICA_TAIL_LINES, start)
    if tail:
        print("the app's last output:", file=sys.stderr)
        for line in tail:
            print(f"  {line}", file=sys.stderr)
    else:
        print("the app printed nothing", file=sys.stderr)


async def _run_replica(args: argparse.Namespace) -> int:
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        print("zeroserve replica: give the app command after --", file=sys.stderr)
        return 2
    env = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"zeroserve replica: --env {item!r}: expected NAME=VALUE", file=sys.stderr)
            return 2
        env[name] = value
    if args.logs:
        args.logs.mkdir(parents=True, exist_ok=True)
        return await _serve_replica(args, cmd, env, args.logs)
    # the app's output is kept to show its last lines if it fails
    with tempfile.TemporaryDirectory(prefix="zeroserve-replica-") as temp:
        return await _serve_replica(args, cmd, env, Path(temp))


async def _serve_replica(
    args: argparse.Namespace, cmd: list[str], env: dict[str, str], logs: Path
) -> int:
    """Serve ``cmd`` behind a queue-proxy until Ctrl-C (or the app exits); logs in ``logs``."""
    spec = ReplicaSpec(
        command=resolve_command(cmd),
        env=env,
        container_concurrency=args.concurrency,
        timeout_seconds=args.timeout,
        drain_quiet_period=args.drain,
        serving_port=args.port,
        host=args.host,
        revision=args.revision,
        configuration=args.revision.rsplit("-", 1)[0],
        service=args.revision.rsplit("-", 1)[0],
    )
    name = f"{args.revision}-local"
    app_log = logs / f"{name}-app.log"
    replica = Replica(spec, name=name, log_dir=logs)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await replica.start()
        await replica.wait_ready(timeout=60)
    except ReplicaError as e:
        await replica.stop()
        start = replica.log_starts.get("app", 0)
        _app_failed(str(e), app_log, start, ran=not isinstance(e, StartError))
        return 1
    url = f"http://{args.host}:{replica.serving_port}"
    print(f"ready: {' '.join(cmd)} behind a queue-proxy at {url}", flush=True)
    print(f"  curl {url}/", flush=True)
    print(f"  stats: curl http://{args.host}:{replica.ports['metrics_port']}/metrics", flush=True)
    print("Ctrl-C to drain and stop.", flush=True)
    app = replica.app
    assert app is not None
    exited = asyncio.ensure_future(app.wait())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if exited.done():
        run = replica.runs.get(spec.container_name)
        status = run.exit_code if run is not None else app.returncode
        _app_failed(f"the app exited with code {status}", app_log, replica.log_starts.get("app", 0))
        code = 1
    print("stopping: queue-proxy drains, then the app", flush=True)
    await replica.stop()
    for fut in (exited, stopping):
        fut.cancel()
    return code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    forksafe.install()  # `up` and `replica` fork every container's process
    if argv[:1] == ["controller"]:
        # The controller is a component of its own (``controller/``), which the core
        # does not import: the alias hands the process over to it, arguments and all.
        os.execv(sys.executable, [sys.executable, "-m", "controller", *argv[1:]])
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="zeroserve %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.command in ("replica", "up"):
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            if args.command == "replica":
                return runner.run(_run_replica(args))
            from .local.up import UpOptions, run_up

            options = UpOptions(
                files=args.files,
                host=args.host,
                port=args.port,
                local_port=args.local_port,
                control_host=args.control_host,
                control_port=args.control_port,
                domain=args.domain,
                log_dir=args.logs,
                activators=args.activators,
                activation_timeout=args.activation_timeout,
                max_starting=args.max_starting,
                standby_queue_proxies=args.standby_queue_proxies,
                sandbox=args.sandbox,
                pod_cidr=args.pod_cidr,
            )
            return runner.run(run_up(options))
    commands = {
        "apply": cmd_apply,
        "delete": cmd_delete,
        "describe": cmd_describe,
        "get": cmd_get,
        "logs": cmd_logs,
        "tree": cmd_tree,
        "wait": cmd_wait,
    }
    try:
        return commands[args.command](args)
    except NotFoundError as e:
        print(f"Error from server (NotFound): {e}", file=sys.stderr)
        return 1
    except BadRequestError as e:
        print(f"Error from server (BadRequest): {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130  # Ctrl-C ends logs -f and get -w, as kubectl's
    except ClientError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
