"""Every series name the components export, with its label names, collected from the
real metrics classes (each fed one observation of everything it counts), and a small
reader of the PromQL the dashboards hold."""

from __future__ import annotations

import re
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest

from activator.metrics import ActivatorCollector, ActivatorMetrics
from autoscaler.local import InMemoryCluster
from autoscaler.metrics import AutoscalerCollector
from autoscaler.model import Endpoint, RevisionInfo
from autoscaler.multiscaler import Multiscaler
from controller.metrics import ControllerMetrics
from queueproxy.metrics import QueueProxyCollector, RequestMetrics, resource_labels
from tests.support.prom import series
from zeroserve.autoscaling.config import AutoscalerConfig
from zeroserve.topology import RevisionKey

KEY = RevisionKey("default", "hello-00001")
RPS_KEY = RevisionKey("default", "rps-00001")


def _queue_proxy() -> CollectorRegistry:
    metrics = RequestMetrics()
    metrics.observe(200, 0.01)
    r = CollectorRegistry()
    r.register(
        QueueProxyCollector(
            metrics,
            resource_labels("default", "hello", "hello", KEY.name, "pod"),
            in_flight=lambda: 1,
            queue_depth=lambda: 0,
            capacity=1,  # with a breaker: kn_serving_queue_depth too
            protocol_errors=lambda: {400: 1},
            max_at_app=lambda: 1,
        )
    )
    return r


def _activator() -> CollectorRegistry:
    m = ActivatorMetrics()
    m.finished(KEY, 200, 0.01)
    m.queued(KEY)
    m.waited(KEY, 0.5)
    m.cold_start(KEY, 1.5)
    r = CollectorRegistry()
    r.register(
        ActivatorCollector(
            m,
            live=lambda: {KEY: (1, 1, 10)},
            budget=lambda: (1, 100),
            pod="activator-0",
            names=lambda key: ("hello", "hello"),
            concurrency=lambda: {KEY: 1.0},
            link=lambda: (True, 0),  # with an autoscaler link
        )
    )
    return r


def _autoscaler() -> CollectorRegistry:
    cluster = InMemoryCluster()
    cluster.put_revision(RevisionInfo(KEY, service="hello", configuration="hello"), 1)
    cluster.put_revision(
        RevisionInfo(
            RPS_KEY,
            annotations={"autoscaling.knative.dev/metric": "rps"},
            service="rps",
            configuration="rps",
        ),
        1,
    )
    for key in (KEY, RPS_KEY):
        cluster.set_pods(key, [Endpoint("p", "127.0.0.1", 1, 1, started_at=0.0)])
    ms = Multiscaler(
        config=AutoscalerConfig.from_mapping({}),
        revisions=cluster,
        pods=cluster,
        scaler=cluster,
        clock=lambda: 1000.0,
    )
    ms.sync(1000.0)
    r = CollectorRegistry()
    r.register(AutoscalerCollector(ms))
    return r


def _controller() -> CollectorRegistry:
    m = ControllerMetrics()
    m.reconciles.labels("ok").inc()
    m.writes.labels("create", "deployments").inc()
    m.errors.labels("Conflict").inc()
    m.duration.observe(0.01)
    m.watch("services", lambda: 1)
    return m.registry


COMPONENTS = {
    "queue-proxy": _queue_proxy,
    "activator": _activator,
    "autoscaler": _autoscaler,
    "controller": _controller,
}


def exported() -> dict[str, set[str]]:
    """Exposed sample name (``x_total``, ``x_bucket``, ...) -> its label names."""
    out: dict[str, set[str]] = {}
    for build in COMPONENTS.values():
        for name, samples in series(generate_latest(build()).decode()).items():
            names = out.setdefault(name, set())
            for labels, _ in samples:
                names.update(labels)
    return out


# -- PromQL, as much of it as the dashboards use ------------------------------------

_TOKEN = re.compile(
    r'(?P<string>"(?:[^"\\]|\\.)*")'
    r"|(?P<matchers>\{[^}]*\})"
    r"|(?P<range>\[[^\]]*\])"
    r"|(?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)"
    r"|(?P<number>[0-9][0-9.eE+-]*)"
    r"|(?P<other>\S)"
)
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*,?')
KEYWORDS = {"and", "or", "unless", "bool", "offset", "group_left", "group_right"}


@dataclass(frozen=True)
class Selector:
    metric: str
    labels: frozenset[str]


def selectors(expr: str) -> list[Selector]:
    """The series selectors of a PromQL expression: metric names and matched labels.
    Function names (an identifier followed by ``(``) and grouping clauses are skipped."""
    text = _GROUPING.sub(" ", expr)
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(text)]
    out = []
    for i, (kind, value) in enumerate(tokens):
        if kind != "ident" or value in KEYWORDS:
            continue
        nxt = tokens[i + 1] if i + 1 < len(tokens) else (None, "")
        if nxt == ("other", "("):
            continue  # a function
        labels: set[str] = set()
        if nxt[0] == "matchers":
            body = nxt[1][1:-1]
            found = _MATCHER.findall(body)
            assert _MATCHER.sub("", body).strip() == "", f"unparsed matchers {body!r} in {expr}"
            labels = {name for name, _ in found}
        out.append(Selector(value, frozenset(labels)))
    return out
