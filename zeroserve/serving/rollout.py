"""Gradual rollout of a new revision: Knative's rollout state and its steps, pure.

Follows knative/serving ``pkg/reconciler/route/traffic/rollout.go`` and how
``pkg/reconciler/route/reconcile_resources.go`` (``reconcileRollout``) keeps the state
between reconciles (upstream stores it as JSON in an annotation of the Ingress; here
it is a field of the route's record, :attr:`RouteRecord.rollout`).

- The state is, per tag (``""`` is the default split) and per followed configuration
  (only ``latestRevision`` targets with a percent > 0 roll out), the target's whole
  percent and the revisions sharing it, oldest first, newest last.
- The rollout duration is the Route's (or Service's) ``serving.knative.dev/rollout-duration``
  annotation, else ``config-network``'s ``rollout-duration``; 0 switches rollouts off
  (the state is still recorded, as upstream records its baseline).
- When the configuration's latest ready revision changes while the route already
  serves, the new revision starts at 1 %, taken from the newest older revision that
  has traffic, and the start time is stamped. A target of exactly 1 % does not roll.
- Once the new programming is in effect (upstream: the Ingress became ready; here at
  once), the step parameters are computed with ``min_step`` = the time programming took,
  rounded up, at least 1 s: ``duration' = max(1, duration - min_step)``,
  ``steps = min(percent - 1, max(1, duration' / min_step))``,
  ``step_size = round((percent - 1) / steps)``, ``step_duration = duration' / steps``.
- Every ``step_duration`` the newest revision gains ``step_size`` percent (at most the
  target's percent), taken from the older revisions newest first; an older revision
  that reaches 0 leaves. One revision left: the rollout is over.
- A newer revision during a rollout starts a new rollout from the current split: it
  takes 1 % from the newest revision with traffic (the one that was rolling in), and
  the older revisions keep their shares until the new one's steps drain them, newest
  first.
- A change of the target's percent is applied to the rollout: an increase goes to the
  newest revision, a decrease is taken from the oldest ones first.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Protocol


class TargetLike(Protocol):
    """A resolved traffic target (``zeroserve.serving.state.ResolvedTarget``)."""

    @property
    def revision(self) -> str: ...
    @property
    def percent(self) -> int: ...
    @property
    def tag(self) -> str: ...
    @property
    def latest_revision(self) -> bool: ...
    @property
    def configuration(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Share:
    """One revision's part of a configuration's traffic during a rollout."""

    revision: str
    percent: int


@dataclass(frozen=True, slots=True)
class StepParams:
    """Upstream's ``RolloutParams``; times are Unix seconds, 0 = not set."""

    start: float = 0.0
    """When the newest revision's rollout began."""
    next_step: float = 0.0
    """When the next step is due."""
    step_duration: float = 0.0
    """Seconds between steps; 0 until computed (:func:`observe_ready`)."""
    step_size: int = 0
    """Percent the newest revision gains per step."""


@dataclass(frozen=True, slots=True)
class ConfigRollout:
    """One configuration's rollout under one tag."""

    configuration: str
    tag: str
    percent: int
    """The whole percent the route's traffic gives the configuration's latest revision."""
    revisions: tuple[Share, ...]
    """Oldest first; the last one is the one rolling in. One entry: no rollout."""
    params: StepParams = StepParams()

    @property
    def done(self) -> bool:
        return len(self.revisions) < 2


@dataclass(frozen=True, slots=True)
class Rollout:
    """Every configuration's rollout of one route, sorted by (tag, configuration)."""

    configurations: tuple[ConfigRollout, ...] = ()

    @property
    def done(self) -> bool:
        return all(c.done for c in self.configurations)

    def find(self, tag: str, configuration: str) -> ConfigRollout | None:
        for c in self.configurations:
            if c.tag == tag and c.configuration == configuration:
                return c
        return None

    def next_step(self) -> float | None:
        """When the earliest pending step is due; None when nothing is rolling."""
        due = [
            c.params.next_step
            for c in self.configurations
            if not c.done and c.params.step_size > 0 and c.params.next_step > 0
        ]
        return min(due) if due else None


def _sorted(configs: Iterable[ConfigRollout]) -> Rollout:
    return Rollout(tuple(sorted(configs, key=lambda c: (c.tag, c.configuration))))


def build(targets: Iterable[TargetLike]) -> Rollout:
    """The rollout the resolved traffic asks for, with no history (upstream's
    ``BuildRollout``): per tag, each ``latestRevision`` target with a percent, all
    on its current revision. The default split (tag ``""``) sees every target,
    merged by revision (the first one's fields win, as upstream consolidates)."""
    targets = list(targets)
    entries: list[tuple[str, int, TargetLike]] = []  # (tag, percent, target)
    merged: dict[str, int] = {}  # revision -> index of its default-split entry
    for t in targets:
        at = merged.get(t.revision)
        if at is None:
            merged[t.revision] = len(entries)
            entries.append(("", t.percent, t))
        else:
            tag, percent, first = entries[at]
            entries[at] = (tag, percent + t.percent, first)
    entries.extend((t.tag, t.percent, t) for t in targets if t.tag)
    out = [
        ConfigRollout(t.configuration, tag, percent, (Share(t.revision, percent),))
        for tag, percent, t in entries
        if t.latest_revision and percent > 0
    ]
    return _sorted(out)


def _adjust(goal: int, prev: ConfigRollout) -> tuple[Share, ...]:
    """``prev``'s revisions with the configuration's percent changed to ``goal``."""
    revs = list(prev.revisions)
    diff = goal - prev.percent
    if goal == 0:
        return ()
    if diff > 0:
        revs[-1] = replace(revs[-1], percent=revs[-1].percent + diff)
    elif diff < 0:
        diff = -diff
        i = 0
        while diff > 0 and i < len(revs):
            if revs[i].percent > diff:
                revs[i] = replace(revs[i], percent=revs[i].percent - diff)
                break
            diff -= revs[i].percent
            i += 1
        revs = revs[i:]
    return tuple(revs)


def _step_revisions(c: ConfigRollout, now: float) -> ConfigRollout:
    """Move ``step_size`` percent to the newest revision if the step is due."""
    p = c.params
    if now < p.next_step or len(c.revisions) < 2:
        return c
    revs = list(c.revisions)
    remaining = p.step_size
    write = len(revs) - 1
    read = len(revs) - 2
    while remaining > 0 and read >= 0:
        if revs[read].percent > remaining:
            revs[read] = replace(revs[read], percent=revs[read].percent - remaining)
            break
        remaining -= revs[read].percent
        write -= 1
        read -= 1
    newest = revs[-1]
    revs[write] = replace(newest, percent=min(newest.percent + p.step_size, c.percent))
    revs = revs[: write + 1]
    # One revision left: the rollout is over.
    params = replace(p, next_step=now + p.step_duration) if len(revs) > 1 else StepParams()
    return replace(c, revisions=tuple(revs), params=params)


def _step_config(goal: ConfigRollout, prev: ConfigRollout, now: float) -> ConfigRollout:
    prev_revs = _adjust(goal.percent, prev) if prev.revisions else ()
    newest = goal.revisions[0]
    if not prev_revs or newest.revision == prev_revs[-1].revision:
        # No new revision: carry on with the rollout in progress, if any.
        if len(prev_revs) > 1:
            ongoing = replace(goal, revisions=prev_revs, params=prev.params)
            if ongoing.params.step_size > 0:
                ongoing = _step_revisions(ongoing, now)
            return ongoing
        return goal
    # A new revision: it takes 1 % from the newest revision that has traffic.
    revs = list(prev_revs)
    for i in range(len(revs) - 1, -1, -1):
        if revs[i].percent > 0:
            revs[i] = replace(revs[i], percent=revs[i].percent - 1)
            break
    kept = tuple(r for r in revs if r.percent > 0)
    return replace(goal, revisions=(*kept, Share(newest.revision, 1)), params=StepParams(start=now))


def step(cur: Rollout, prev: Rollout | None, now: float) -> Rollout:
    """The rollout in effect at ``now``, from the one the traffic asks for (``cur``,
    from :func:`build`) and the one in effect before (``prev``; None: nothing was
    serving, so everything takes its traffic at once). Upstream's ``Rollout.Step``."""
    if prev is None or not prev.configurations:
        return cur
    prev_by_tag: dict[str, list[ConfigRollout]] = {}
    for c in prev.configurations:
        prev_by_tag.setdefault(c.tag, []).append(c)
    cur_by_tag: dict[str, list[ConfigRollout]] = {}
    for c in cur.configurations:
        cur_by_tag.setdefault(c.tag, []).append(c)
    out: list[ConfigRollout] = []
    for tag, ccfgs in cur_by_tag.items():
        pcfgs = prev_by_tag.get(tag)
        if pcfgs is None:
            out.append(ccfgs[0])  # a new tag: no history to roll from (as upstream)
            continue
        i = j = 0
        while i < len(ccfgs):
            c = ccfgs[i]
            if j >= len(pcfgs):
                out.append(c)
                i += 1
            elif c.configuration == pcfgs[j].configuration:
                if c.percent > 1:
                    out.append(_step_config(c, pcfgs[j], now))
                elif c.percent == 1:
                    out.append(c)  # 1 % (an A/B probe) never rolls
                i += 1
                j += 1
            elif c.configuration < pcfgs[j].configuration:
                if c.percent != 0:
                    out.append(c)  # a configuration new to the route
                i += 1
            else:
                j += 1  # a configuration that left the route
    return _sorted(out)


def observe_ready(ro: Rollout, now: float, duration: float) -> Rollout:
    """Compute the step parameters of every rollout that has started but has none yet,
    now that its first programming is in effect (upstream's ``ObserveReady``)."""
    out = []
    for c in ro.configurations:
        p = c.params
        if p.step_duration == 0 and p.start > 0:
            min_step = max(1.0, math.ceil(now - p.start))
            c = replace(c, params=_properties(c.percent, p.start, now, min_step, duration))
        out.append(c)
    return Rollout(tuple(out))


def _properties(
    percent: int, start: float, now: float, min_step: float, duration: float
) -> StepParams:
    duration = max(1.0, duration - min_step)
    steps = max(1.0, duration / min_step)
    rest = float(percent - 1)
    if rest < steps:
        steps = rest
    size = math.floor(rest / steps + 0.5)  # Go's math.Round (half away from zero)
    step_duration = duration / steps
    return StepParams(
        start=start, next_step=now + step_duration, step_duration=step_duration, step_size=size
    )


def advance(
    goal: Iterable[TargetLike], prev: Rollout | None, now: float, duration: float
) -> Rollout:
    """One reconcile's rollout: what the resolved traffic ``goal`` asks for, stepped
    from ``prev`` at ``now`` with a rollout ``duration`` in seconds (0: off, the new
    traffic at once; the state is kept as the baseline of a later rollout)."""
    cur = build(goal)
    if duration <= 0:
        return cur
    return observe_ready(step(cur, prev, now), now, duration)


def apply(targets: Iterable[TargetLike], ro: Rollout) -> list[tuple[TargetLike, tuple[Share, ...]]]:
    """Each target with the revisions it is split over now: a ``latestRevision``
    target whose configuration is rolling under its tag gets the rollout's shares
    (oldest first), every other target its own revision at its percent."""
    out: list[tuple[TargetLike, tuple[Share, ...]]] = []
    for t in targets:
        c = ro.find(t.tag, t.configuration) if t.latest_revision else None
        if c is not None and not c.done and c.percent == t.percent:
            out.append((t, c.revisions))
        else:
            out.append((t, (Share(t.revision, t.percent),)))
    return out


# ----- persistence (the in-cluster controller keeps the state on an object) -----------------

_NANOS = 1_000_000_000


def to_json(ro: Rollout) -> str:
    """The state in Knative's JSON shape (its Ingress annotation
    ``networking.internal.knative.dev/rollout``: times in Unix nanoseconds)."""
    return json.dumps(
        {
            "configurations": [
                {
                    "configurationName": c.configuration,
                    **({"tag": c.tag} if c.tag else {}),
                    "percent": c.percent,
                    "revisions": [
                        {"revisionName": s.revision, "percent": s.percent} for s in c.revisions
                    ],
                    "stepParams": {
                        k: v
                        for k, v in (
                            ("starttime", round(c.params.start * _NANOS)),
                            ("nextStepTime", round(c.params.next_step * _NANOS)),
                            ("stepDuration", round(c.params.step_duration * _NANOS)),
                            ("stepSize", c.params.step_size),
                        )
                        if v
                    },
                }
                for c in ro.configurations
            ]
        },
        separators=(",", ":"),
    )


def from_json(text: str | None) -> Rollout | None:
    """The state back from :func:`to_json`; None when absent, malformed or inconsistent
    (Knative's ``Validate``: then the next rollout starts from no history)."""
    if not text:
        return None
    try:
        data = json.loads(text)
        out = []
        for c in data.get("configurations") or []:
            p = c.get("stepParams") or {}
            revisions = tuple(
                Share(str(r["revisionName"]), int(r["percent"])) for r in c.get("revisions") or []
            )
            rollout = ConfigRollout(
                configuration=str(c["configurationName"]),
                tag=str(c.get("tag", "")),
                percent=int(c["percent"]),
                revisions=revisions,
                params=StepParams(
                    start=int(p.get("starttime", 0)) / _NANOS,
                    next_step=int(p.get("nextStepTime", 0)) / _NANOS,
                    step_duration=int(p.get("stepDuration", 0)) / _NANOS,
                    step_size=int(p.get("stepSize", 0)),
                ),
            )
            if (
                rollout.percent > 100
                or not 0 <= rollout.params.step_size <= rollout.percent
                or sum(s.percent for s in revisions) != rollout.percent
            ):
                return None
            out.append(rollout)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return _sorted(out)
