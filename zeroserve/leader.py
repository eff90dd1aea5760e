"""Leader election on a ``coordination.k8s.io/v1`` Lease: one replica of a component acts,
the others stand by with warm caches and take over when it stops or dies.

The protocol is the one every Kubernetes controller speaks (kubernetes
``staging/src/k8s.io/client-go/tools/leaderelection/leaderelection.go``; so ``kubectl get
lease`` reads it): the Lease's ``spec.holderIdentity`` names the leader, which rewrites
``renewTime`` every ``renew_interval`` (5 s). A candidate takes the Lease when it is free
(no holder, as a leader leaves it when it stops) or when the holder has not renewed it for
``leaseDurationSeconds`` (15 s). Every write is a PUT with the ``resourceVersion`` that was
read, so of two candidates racing for the same Lease exactly one wins (the other gets a
409 and stays a candidate).

"Not renewed for 15 s" is measured on this process's monotonic clock from the moment the
candidate *saw* the Lease change, not by comparing ``renewTime`` with the local wall clock:
two machines' clocks may disagree by more than the lease duration. Times written into the
Lease are timezone-aware UTC, in the API's MicroTime format.

A leader that cannot renew (the API is down, or another took the Lease) for
``renew_deadline`` (10 s, less than the lease duration) steps down on its own, so by the
time a standby may take over, the old leader has stopped acting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from zeroserve.api.objects import Obj
from zeroserve.kube import LEASES, AlreadyExists, Conflict, KubeClient, KubeError, NotFound

log = logging.getLogger(__name__)

LEASE_DURATION = 15.0
RENEW_INTERVAL = 5.0
RETRY_INTERVAL = 2.0
"""How often a standby looks at the Lease."""
RENEW_DEADLINE = 10.0
"""A leader that could not renew for this long steps down (< the lease duration)."""


def micro_time(moment: datetime) -> str:
    """``2026-01-02T03:04:05.123456Z``: a Kubernetes MicroTime (always UTC)."""
    if moment.tzinfo is None:
        raise ValueError("micro_time needs a timezone-aware datetime")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_micro_time(text: Any) -> datetime | None:
    """A MicroTime (or an RFC 3339 time) as an aware datetime; None if absent or invalid."""
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def default_identity() -> str:
    """The pod's name (its hostname) plus a random suffix: unique even across restarts."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class LeaseRecord:
    """The election fields of a Lease's ``spec``."""

    holder: str = ""
    """``holderIdentity``; empty when nobody leads."""
    duration: float = LEASE_DURATION
    """``leaseDurationSeconds``."""
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0
    """``leaseTransitions``: how many times the holder changed."""

    @classmethod
    def from_lease(cls, lease: Obj) -> LeaseRecord:
        spec = lease.get("spec") or {}
        duration = spec.get("leaseDurationSeconds")
        transitions = spec.get("leaseTransitions")
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            duration=float(duration)
            if isinstance(duration, int | float) and duration > 0
            else LEASE_DURATION,
            acquire_time=parse_micro_time(spec.get("acquireTime")),
            renew_time=parse_micro_time(spec.get("renewTime")),
            transitions=transitions if isinstance(transitions, int) else 0,
        )

    def spec(self) -> Obj:
        out: Obj = {
            "holderIdentity": self.holder or None,
            "leaseDurationSeconds": max(1, round(self.duration)),
            "leaseTransitions": self.transitions,
        }
        if self.acquire_time is not None:
            out["acquireTime"] = micro_time(self.acquire_time)
        if self.renew_time is not None:
            out["renewTime"] = micro_time(self.renew_time)
        return out


class LeaderElector:
    """Campaigns for one Lease until stopped; ``leading`` says whether this process leads.

    ``start()`` runs the campaign as one task; ``stop()`` ends it and, when leading, frees
    the Lease so that a standby takes over at its next look instead of after the lease
    duration. Callbacks registered with ``on_change`` run (synchronously, on the loop)
    with True when leadership is gained and False when it is lost."""

    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        name: str,
        *,
        identity: str | None = None,
        lease_duration: float = LEASE_DURATION,
        renew_interval: float = RENEW_INTERVAL,
        retry_interval: float = RETRY_INTERVAL,
        renew_deadline: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        deadline = renew_deadline if renew_deadline is not None else lease_duration * 2 / 3
        if not 0 < renew_interval < deadline < lease_duration:
            raise ValueError(
                "need 0 < renew_interval < renew_deadline < lease_duration, got "
                f"{renew_interval}, {deadline}, {lease_duration}"
            )
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity or default_identity()
        self.lease_duration = lease_duration
        self.renew_interval = renew_interval
        self.retry_interval = retry_interval
        self.renew_deadline = deadline
        self._clock = clock
        self._wall = wall_clock
        self._leading = asyncio.Event()
        self._callbacks: list[Callable[[bool], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._seen: LeaseRecord | None = None
        self._seen_at = 0.0
        self._renewed_at = 0.0

    def __str__(self) -> str:
        return f"lease {self.namespace}/{self.name}"

    @property
    def leading(self) -> bool:
        return self._leading.is_set()

    def on_change(self, callback: Callable[[bool], None]) -> None:
        self._callbacks.append(callback)

    async def wait_leading(self) -> None:
        await self._leading.wait()

    # ----- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._campaign(), name=f"leader-election {self}")

    async def stop(self, *, release: bool = True) -> None:
        """End the campaign; with ``release`` (the default) free the Lease if we hold it.
        ``release=False`` leaves it to expire, as a crash would."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.leading and release:
            await self._release()
        self._set_leading(False)

    # ----- the campaign --------------------------------------------------------------------

    async def _campaign(self) -> None:
        while True:
            try:
                ok = await self._try_acquire_or_renew()
            except KubeError as exc:
                log.warning("%s: %s", self, exc)
                ok = False
            except Exception:
                log.exception("%s: election step failed", self)
                ok = False
            now = self._clock()
            if ok:
                self._renewed_at = now
                self._set_leading(True)
            elif self.leading and now - self._renewed_at >= self.renew_deadline:
                log.error("%s: not renewed for %.1fs; stepping down", self, now - self._renewed_at)
                self._set_leading(False)
            await asyncio.sleep(self.renew_interval if self.leading else self.retry_interval)

    async def _try_acquire_or_renew(self) -> bool:
        now = self._wall()
        try:
            lease = await self.client.get(LEASES, self.namespace, self.name)
        except NotFound:
            mine = LeaseRecord(self.identity, self.lease_duration, now, now, 0)
            body = {
                "apiVersion": LEASES.api_version,
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": mine.spec(),
            }
            try:
                await self.client.create(LEASES, body)
            except AlreadyExists:
                return False  # another candidate created it first
            log.info("%s: created, %s leads", self, self.identity)
            return True
        record = LeaseRecord.from_lease(lease)
        if record != self._seen:
            self._seen, self._seen_at = record, self._clock()
        ours = record.holder == self.identity
        if not ours and self.leading:
            # Someone else took it while we could not renew: we lost it, now.
            log.error("%s: taken over by %r", self, record.holder)
            self._set_leading(False)
        if record.holder and not ours and self._clock() - self._seen_at < record.duration:
            return False  # held, and renewed within its duration as far as we have seen
        mine = replace(
            record,
            holder=self.identity,
            duration=self.lease_duration,
            renew_time=now,
            acquire_time=record.acquire_time if ours else now,
            transitions=record.transitions if ours or not record.holder else record.transitions + 1,
        )
        lease["spec"] = {**(lease.get("spec") or {}), **mine.spec()}
        try:
            await self.client.replace(LEASES, lease)
        except Conflict:
            return False  # raced with another candidate (or our own stale read): look again
        if not ours:
            log.info("%s: %s leads now (previous holder %r)", self, self.identity, record.holder)
        return True

    async def _release(self) -> None:
        try:
            lease = await self.client.get(LEASES, self.namespace, self.name)
            if LeaseRecord.from_lease(lease).holder != self.identity:
                return
            now = self._wall()
            spec = lease.get("spec") or {}
            spec.update(holderIdentity=None, leaseDurationSeconds=1, renewTime=micro_time(now))
            lease["spec"] = spec
            await self.client.replace(LEASES, lease)
            log.info("%s: released by %s", self, self.identity)
        except KubeError as exc:
            log.warning(
                "%s: could not release (a standby takes over when it expires): %s", self, exc
            )

    def _set_leading(self, leading: bool) -> None:
        if leading == self.leading:
            return
        if leading:
            self._leading.set()
        else:
            self._leading.clear()
        log.info("%s: %s is %s", self, self.identity, "the leader" if leading else "a standby")
        for callback in self._callbacks:
            try:
                callback(leading)
            except Exception:
                log.exception("%s: leadership callback %r failed", self, callback)
