"""Host -> revision routing: the table the controller publishes, and the percent split.

``RoutingTable`` maps host names (``{svc}.{ns}.{domain}``, tag hosts
``{tag}-{svc}.{ns}.{domain}``, cluster-local names) to a ``Split``; a split
picks the revision for each request. The split is a smooth weighted round
robin: deterministic, and exact over every window of ``sum(percents)``
requests, so a 20/80 split is 20/80 after 100 requests, not just in the long
run, and never sends two requests in a row to the 20 % revision.
"""

from __future__ import annotations

from collections.abc import Iterable

from zeroserve.topology import RevisionKey, Route, Target

__all__ = ["Route", "RoutingTable", "Split", "Target", "normalize_host"]


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


class RoutingTable:
    """Immutable host -> split map; a new table replaces the old one whole."""

    __slots__ = ("_hosts", "routes")

    def __init__(self, routes: Iterable[Route] = ()) -> None:
        self.routes = tuple(routes)
        hosts: dict[bytes, Split] = {}
        for route in self.routes:
            split = Split(route.targets) if any(t.percent for t in route.targets) else None
            if split is not None:
                for h in route.hosts:
                    hosts[normalize_host(h.encode())] = split
            for tag_hosts, revision in route.tags.values():
                tag_split = Split.single(revision)
                for h in tag_hosts:
                    hosts[normalize_host(h.encode())] = tag_split
        self._hosts = hosts

    def lookup(self, host: bytes) -> Split | None:
        """The split for a Host header value (any case, port, trailing dot)."""
        split = self._hosts.get(host)
        if split is None:
            split = self._hosts.get(normalize_host(host))
        return split

    def revisions(self) -> set[RevisionKey]:
        """Every revision some host can reach."""
        out: set[RevisionKey] = set()
        for route in self.routes:
            out.update(t.revision for t in route.targets if t.percent)
            out.update(rev for _, rev in route.tags.values())
        return out

    def hosts(self) -> list[str]:
        return sorted(h.decode() for h in self._hosts)
