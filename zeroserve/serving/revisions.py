"""Revisions: naming, stamping them out of a template with defaults, following the
latest ready one, and what the runtime needs to run one.

A revision is created for every template change: named by the template, or
``{configuration}-{generation:05d}`` (knative/serving
``pkg/reconciler/configuration/resources/revision.go``). Its spec is fixed at
creation with ``config-defaults`` applied then, as upstream's admission
defaulting does; a later change of the defaults does not touch it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zeroserve.api.configs import DefaultsConfig
from zeroserve.api.names import child_name
from zeroserve.api.objects import Container, RevisionTemplate
from zeroserve.serving.routes import reachable, referenced, routing_state
from zeroserve.serving.state import ConfigurationRecord, RevisionRecord, State
from zeroserve.topology import RevisionInfo, RevisionKey


class TemplateConflict(Exception):
    """A template cannot become a revision; ``path`` and ``rule`` describe why."""

    def __init__(self, path: str, rule: str) -> None:
        super().__init__(f"{path}: {rule}")
        self.path = path
        self.rule = rule


def revision_name(configuration: str, generation: int) -> str:
    """``hello-00003``; shortened with a hash when it would pass 63 characters
    (:func:`zeroserve.api.names.child_name`)."""
    return child_name(configuration, f"-{generation:05d}")


DEFAULT_CONTAINER_NAME = "user-container"
DEFAULT_INIT_CONTAINER_NAME = "init-container"
"""``config-defaults``' ``container-name-template`` and ``init-container-name-template``
defaults: the bases of the names of unnamed sidecars and init containers."""


def container_names(template: RevisionTemplate, serving_name: str) -> tuple[list[str], list[str]]:
    """The names of the template's containers and init containers, in order, as Knative's
    defaulting gives them (``pkg/apis/serving/v1/revision_defaults.go``): the serving
    container has ``serving_name`` (the revision's defaulted container name); any other
    container without a name gets ``user-container-N`` (``init-container-N``), N counting
    up from 0 past the names already taken."""
    serving = template.container
    taken = {c.name for c in (*template.containers, *template.init_containers) if c.name}
    taken.add(serving_name)

    def named(containers: tuple[Container, ...], default: str) -> list[str]:
        out: list[str] = []
        suffix = 0
        for c in containers:
            if c is serving:
                out.append(serving_name)
                continue
            name = c.name
            if not name:
                name = default
                while name in taken or (len(containers) > 1 and name == default):
                    name = child_name(default, f"-{suffix}")
                    suffix += 1
                taken.add(name)
            out.append(name)
        return out

    # An unnamed serving container took config-defaults' name; the others build on it.
    base = serving_name if not serving.name else DEFAULT_CONTAINER_NAME
    return named(template.containers, base), named(
        template.init_containers, DEFAULT_INIT_CONTAINER_NAME
    )


def _optional_timeout(given: int | None, default: int, timeout: int) -> int:
    # As upstream: the response-start and idle timeouts take the config default only
    # when it is set and shorter than the total timeout, so by default both are off.
    if given is not None:
        return given
    return default if 0 < default < timeout else 0


def new_revision(
    state: State,
    cfg: ConfigurationRecord,
    template: RevisionTemplate,
    defaults: DefaultsConfig,
    now: float,
) -> str:
    """Make ``template`` the configuration's latest created revision; returns its name.

    The configuration's generation must already count this template. Re-applying a
    template that a named revision already has reuses that revision (a rollback to a
    named template); the same name with a different template is a ``TemplateConflict``
    because a revision's spec never changes."""
    name = template.name or revision_name(cfg.name, cfg.generation)
    key = RevisionKey(cfg.namespace, name)
    existing = state.revisions.get(key)
    if existing is not None:
        if existing.configuration != cfg.name:
            raise TemplateConflict(
                "spec.template.metadata.name",
                f"revision {name} already exists and belongs to Configuration "
                f"{cfg.namespace}/{existing.configuration}",
            )
        if existing.template != template:
            if template.name:
                raise TemplateConflict(
                    "spec.template.metadata.name",
                    f"{name!r} already names a revision with a different template; a revision "
                    "cannot change, so give the changed template a new name",
                )
            raise TemplateConflict(
                "spec.template",
                f"the generated revision name {name} is taken by a revision with a different "
                "template; set spec.template.metadata.name",
            )
        cfg.latest_created = name
        return name
    timeout = template.timeout_seconds or defaults.revision_timeout_seconds
    state.revisions[key] = RevisionRecord(
        key=key,
        configuration=cfg.name,
        service=cfg.service,
        generation=cfg.generation,
        created=now,
        template=template,
        container_concurrency=(
            defaults.container_concurrency
            if template.container_concurrency is None
            else template.container_concurrency
        ),
        timeout_seconds=timeout,
        response_start_timeout_seconds=_optional_timeout(
            template.response_start_timeout_seconds,
            defaults.response_start_timeout_seconds,
            timeout,
        ),
        idle_timeout_seconds=_optional_timeout(
            template.idle_timeout_seconds, defaults.revision_idle_timeout_seconds, timeout
        ),
        container_name=template.container.name or defaults.container_name,
    )
    cfg.revisions.append(name)
    cfg.latest_created = name
    return name


def update_latest_ready(state: State, cfg: ConfigurationRecord) -> None:
    """Move ``latest_ready`` forward as upstream's configuration reconciler does: to the
    latest created revision once it is ready, else to the newest ready revision created
    after the current one. It never moves back to an older revision, and a revision
    that was created but is not ready yet never takes traffic from a ready one."""
    by_name = {r.key.name: r for r in state.configuration_revisions(cfg)}
    latest = by_name.get(cfg.latest_created)
    if latest is not None and latest.observed.ready is True:
        cfg.latest_ready = latest.key.name
        return
    start = cfg.revisions.index(cfg.latest_ready) + 1 if cfg.latest_ready in by_name else 0
    for name in reversed(cfg.revisions[start:]):
        if by_name[name].observed.ready is True:
            cfg.latest_ready = name
            return


def track_routing_states(state: State, now: float) -> None:
    """Record each revision's routing state and, when it changes, the time (Knative's
    ``routingState`` label and ``routingStateModified`` annotation, which its labeler
    bumps only on a change: ``pkg/apis/serving/v1/revision_helpers.go``). A revision's
    first state is stamped at the reconcile that follows its creation, so with its
    creation time."""
    served, live = referenced(state), reachable(state)
    for key, rev in state.revisions.items():
        now_state = routing_state(key, served, live)
        if now_state != rev.routing_state or rev.routing_state_modified is None:
            rev.routing_state = now_state
            rev.routing_state_modified = now


@dataclass(frozen=True, slots=True)
class RunnableContainer:
    """The user container as the runtime starts it."""

    name: str
    image: str
    """Recorded only: locally the image is never pulled."""
    command: tuple[str, ...]
    """As written. Locally the runtime resolves a leading ``python`` to its own
    interpreter, so manifests can say ``command: ["python", "app.py"]`` in any venv."""
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    """(name, value) in manifest order; ``PORT`` and ``K_*`` are added by the runtime."""
    port: int
    """The declared ``containerPort`` (8080 when none): ``$PORT`` in a pod; locally the
    runtime picks a free port and passes that instead."""
    h2c: bool
    """The port is named ``h2c`` (HTTP/2 without TLS) rather than ``http1``."""
    readiness_probe: Mapping[str, Any] | None
    """The probe as JSON for ``SERVING_READINESS_PROBE``, with handler ports removed:
    they can only name the container's own port, which the runtime assigns. None: the
    runtime's default (TCP on the app's port, as Knative)."""
    liveness_probe: Mapping[str, Any] | None
    """Recorded; enforcing it is the runtime's choice."""
    working_dir: str
    resources: Mapping[str, Mapping[str, str | int | float]] = field(default_factory=dict)
    """Recorded; not enforced locally."""


@dataclass(frozen=True, slots=True)
class DesiredRevision:
    """One revision the runtime should be able to run."""

    info: RevisionInfo
    container: RunnableContainer
    template: RevisionTemplate
    """The revision's template as recorded (every pod field, as written): what a
    Deployment is rendered from."""


def desired_revision(record: RevisionRecord, *, reachable: bool) -> DesiredRevision:
    c = record.template.container
    info = RevisionInfo(
        key=record.key,
        container_concurrency=record.container_concurrency,
        annotations=dict(record.template.annotations),
        reachable=reachable,
        service=record.service,
        configuration=record.configuration,
        timeout_seconds=float(record.timeout_seconds),
        response_start_timeout_seconds=float(record.response_start_timeout_seconds),
        idle_timeout_seconds=float(record.idle_timeout_seconds),
        protocol="h2c" if c.port.name == "h2c" else "http1",
    )
    return DesiredRevision(
        info=info,
        container=RunnableContainer(
            name=record.container_name,
            image=c.image,
            command=c.command,
            args=c.args,
            env=tuple((e.name, e.value) for e in c.env),
            port=c.port.container_port,
            h2c=c.port.name == "h2c",
            readiness_probe=_portless(c.readiness_probe),
            liveness_probe=_portless(c.liveness_probe),
            working_dir=c.working_dir,
            resources={k: dict(v) for k, v in c.resources.items()},
        ),
        template=record.template,
    )


def _portless(probe: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if probe is None:
        return None
    out = {k: v for k, v in probe.items() if k not in ("httpGet", "tcpSocket")}
    for handler in ("httpGet", "tcpSocket"):
        if handler in probe:
            out[handler] = {k: v for k, v in probe[handler].items() if k != "port"}
    return out
