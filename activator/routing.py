"""Host -> revision routing: the table the controller publishes, and the percent split.

``RoutingTable`` maps host names (``{svc}.{ns}.{domain}``, tag hosts
``{tag}-{svc}.{ns}.{domain}``, cluster-local names) to a ``Split``; a split
picks the revision for each request. A table is built for one listener
(docs/activator.md, "Listeners"): ``public`` serves only the routes' public hosts
(a cluster-local host is not in it, so it is a 404 there whatever the client
sends), ``local`` (the cluster-local gateway) only their cluster-local names, and
``all`` both (one listener, as on Kubernetes, where Istio's gateways separate them).
With config-features ``tag-header-based-routing``, a request for a route's default
host that names one of the route's tags in ``Knative-Serving-Tag`` goes to the tag's
revision; any other tag value goes where the host goes (Knative's header match).
The split is a smooth weighted round
robin: deterministic, and exact over every window of ``sum(percents)``
requests, so a 20/80 split is 20/80 after 100 requests, not just in the long
run, and never sends two requests in a row to the 20 % revision.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal, TypeAlias

from zeroserve.topology import RevisionKey, Route, TagRoute, Target

__all__ = ["Listener", "Route", "RoutingTable", "Split", "TagRoute", "Target", "normalize_host"]

Listener: TypeAlias = Literal["all", "public", "local"]
LISTENERS: Final[tuple[Listener, ...]] = ("all", "public", "local")


class Split:
    """Weighted choice among revisions (smooth weighted round robin)."""

    __slots__ = ("_current", "_revisions", "_total", "_weights", "targets")

    def __init__(self, targets: Iterable[Target]) -> None:
        merged: dict[RevisionKey, int] = {}
        for t in targets:
            if t.percent < 0:
                raise ValueError(f"{t.revision}: percent must be >= 0, got {t.percent}")
            if t.percent:
                merged[t.revision] = merged.get(t.revision, 0) + t.percent
        if not merged:
            raise ValueError("a split needs at least one target with a percent > 0")
        self.targets = tuple(Target(k, p) for k, p in merged.items())
        self._revisions = list(merged)
        self._weights = list(merged.values())
        self._total = sum(self._weights)
        self._current = [0] * len(self._weights)

    @classmethod
    def single(cls, revision: RevisionKey) -> Split:
        return cls([Target(revision, 100)])

    def peek(self) -> RevisionKey:
        """The revision :meth:`choose` picks next, not picked yet (nothing changes)."""
        revisions = self._revisions
        if len(revisions) == 1:
            return revisions[0]
        current = self._current
        best = 0
        best_value = current[0] + self._weights[0]
        for i, w in enumerate(self._weights):
            if current[i] + w > best_value:
                best, best_value = i, current[i] + w
        return revisions[best]

    def choose(self) -> RevisionKey:
        revisions = self._revisions
        if len(revisions) == 1:
            return revisions[0]
        # Every target gains its weight; the richest is picked and pays the
        # total. Over ``total`` picks each target is picked exactly ``weight``
        # times, spread as evenly as possible.
        current = self._current
        best = 0
        for i, w in enumerate(self._weights):
            current[i] += w
            if current[i] > current[best]:
                best = i
        current[best] -= self._total
        return revisions[best]


def normalize_host(host: bytes) -> bytes:
    """Lower-case, without port and trailing dot: ``Hello.Default.Example.com.:80`` ->
    ``hello.default.example.com``; ``[::1]:8080`` -> ``[::1]``."""
    host = host.strip().lower()
    if host.startswith(b"["):
        end = host.find(b"]")
        return host[: end + 1] if end > 0 else host
    colon = host.rfind(b":")
    if colon >= 0:
        host = host[:colon]
    return host.rstrip(b".")


def _tag_split(tag: TagRoute) -> Split:
    if any(t.percent for t in tag.targets):
        return Split(tag.targets)
    return Split.single(tag.revision)


class RoutingTable:
    """Immutable host -> split map for one listener; a new table replaces the old one whole."""

    __slots__ = ("_hosts", "_tagged", "listener", "routes", "tag_header_routing")

    def __init__(
        self,
        routes: Iterable[Route] = (),
        *,
        listener: Listener = "all",
        tag_header_routing: bool = False,
    ) -> None:
        if listener not in LISTENERS:
            raise ValueError(f"listener must be one of {', '.join(LISTENERS)}, got {listener!r}")
        self.routes = tuple(routes)
        self.listener = listener
        self.tag_header_routing = tag_header_routing
        public = listener in ("all", "public")
        local = listener in ("all", "local")
        hosts: dict[bytes, Split] = {}
        tagged: dict[bytes, dict[bytes, Split]] = {}
        for route in self.routes:
            names = (*(route.hosts if public else ()), *(route.local_hosts if local else ()))
            split = Split(route.targets) if any(t.percent for t in route.targets) else None
            tag_splits = {tag: _tag_split(t) for tag, t in route.tags.items()}
            if split is not None:
                by_tag = {tag.encode(): s for tag, s in tag_splits.items()}
                for h in names:
                    key = normalize_host(h.encode())
                    hosts[key] = split
                    if tag_header_routing and by_tag:
                        tagged[key] = by_tag
            for tag, t in route.tags.items():
                for h in (*(t.hosts if public else ()), *(t.local_hosts if local else ())):
                    hosts[normalize_host(h.encode())] = tag_splits[tag]
        self._hosts = hosts
        self._tagged = tagged

    def lookup(self, host: bytes, tag: bytes | None = None) -> Split | None:
        """The split for a Host header value (any case, port, trailing dot); ``tag``: the
        request's ``Knative-Serving-Tag`` (used only with tag-header routing, and only on
        a route's default hosts; a tag the route lacks changes nothing)."""
        split = self._hosts.get(host)
        if split is None:
            host = normalize_host(host)
            split = self._hosts.get(host)
        if tag and split is not None and self._tagged:
            tags = self._tagged.get(host)  # ``host`` is the key that matched
            if tags is not None:
                return tags.get(tag.strip(), split)
        return split

    def revisions(self) -> set[RevisionKey]:
        """Every revision some host can reach."""
        out: set[RevisionKey] = set()
        for route in self.routes:
            out.update(t.revision for t in route.targets if t.percent)
            for tag in route.tags.values():
                out.add(tag.revision)
                out.update(t.revision for t in tag.targets if t.percent)
        return out

    def hosts(self) -> list[str]:
        return sorted(h.decode() for h in self._hosts)
