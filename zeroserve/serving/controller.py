"""The controller: desired state in (apply/delete), observed state in (the runtime's
revision reports), Knative status and the data plane's inputs out.

Pure: no I/O, no asyncio, time is an argument. Every change runs the whole
reconcile (Service -> Configuration -> Revision, Route resolution, DomainMappings,
conditions) and then revision garbage collection (:mod:`zeroserve.serving.gc`)
synchronously, so after any call the views are consistent. Time-driven work (a
revision turning collectable, a rollout step) waits for :meth:`Controller.tick` at
:meth:`Controller.next_wakeup`. ``version`` grows
whenever something the runtime acts on changes -- revisions to run, the
routing table, or the settings -- so a runtime can poll it cheaply.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Container, Sequence
from dataclasses import replace

from zeroserve.api.configs import LOCAL_DOMAIN, Configs, DomainConfig
from zeroserve.api.errors import ManifestError, ManifestErrors
from zeroserve.api.objects import (
    SYSTEM_NAMESPACE,
    ConfigMapObject,
    Configuration,
    DomainMapping,
    Obj,
    Object,
    ObjectMeta,
    RevisionTemplate,
    Route,
    SecretObject,
    Service,
    TrafficTarget,
)
from zeroserve.api.validate import validate
from zeroserve.knative import CREATOR_ANNOTATION, LAST_MODIFIER_ANNOTATION
from zeroserve.serving import domainmapping, gc, kinds, routes, views
from zeroserve.serving.revisions import (
    DesiredRevision,
    TemplateConflict,
    desired_revision,
    new_revision,
    track_routing_states,
    update_latest_ready,
)
from zeroserve.serving.state import (
    ConfigurationRecord,
    DomainMappingRecord,
    Key,
    Observed,
    RouteRecord,
    ServiceRecord,
    State,
)
from zeroserve.serving.status import refresh
from zeroserve.serving.views import SERVICE_LABEL
from zeroserve.topology import RevisionKey
from zeroserve.topology import Route as TopologyRoute


def reconcile(state: State, now: float) -> None:
    """Bring derived state up to date: latest ready revisions, route programming, the
    revisions' routing states, status, DomainMappings (claims and status)."""
    for cfg in state.configurations.values():
        update_latest_ready(state, cfg)
    for route in state.routes.values():
        routes.reconcile_route(state, route, now)
    track_routing_states(state, now)
    refresh(state, now)
    domainmapping.refresh(state, now)


def _owned(kind: str, namespace: str, name: str, owner: str) -> TemplateConflict:
    return TemplateConflict(
        "metadata.name",
        f"{kind} {namespace}/{name} is owned by Service "
        f"{namespace}/{owner}; change the Service instead",
    )


def _upsert_configuration(
    state: State,
    key: Key,
    meta: ObjectMeta,
    template: RevisionTemplate,
    *,
    service: str,
    applied: Configuration | None,
    now: float,
) -> None:
    cfg = state.configurations.get(key)
    changed = cfg is None or cfg.template != template
    if cfg is None:
        cfg = ConfigurationRecord(
            namespace=key[0],
            name=key[1],
            meta=meta,
            template=template,
            service=service,
            created=now,
        )
        state.configurations[key] = cfg
    cfg.meta, cfg.applied = meta, applied
    if changed:
        # Every template change is a new generation and a new revision, as upstream.
        cfg.generation += 1
        cfg.template = template
        new_revision(state, cfg, template, state.configs.defaults, now)


def _upsert_route(
    state: State,
    key: Key,
    meta: ObjectMeta,
    traffic: tuple[TrafficTarget, ...],
    *,
    service: str,
    applied: Route | None,
    now: float,
) -> None:
    route = state.routes.get(key)
    if route is None:
        state.routes[key] = RouteRecord(
            namespace=key[0],
            name=key[1],
            meta=meta,
            traffic=traffic,
            service=service,
            created=now,
            applied=applied,
        )
        return
    if route.traffic != traffic:
        route.generation += 1
    route.meta, route.traffic, route.applied = meta, traffic, applied


def _with_user_info(state: State, obj: Object, user: str) -> Object:
    """``obj`` with Knative's creator/lastModifier annotations (``SetUserInfo`` in
    ``pkg/apis/serving/metadata_validation.go``): both on create; on an update the creator
    stays and lastModifier changes only with the spec."""
    if not user or not isinstance(obj, Service | Configuration | Route):
        return obj
    key = (obj.meta.namespace, obj.meta.name)
    old: Service | Configuration | Route | None
    if isinstance(obj, Service):
        record = state.services.get(key)
        old = record.applied if record is not None else None
    elif isinstance(obj, Configuration):
        cfg = state.configurations.get(key)
        old = cfg.applied if cfg is not None else None
    else:
        route = state.routes.get(key)
        old = route.applied if route is not None else None
    annotations = dict(obj.meta.annotations)
    if old is None:
        annotations[CREATOR_ANNOTATION] = annotations[LAST_MODIFIER_ANNOTATION] = user
    else:
        before = old.meta.annotations
        for name in (CREATOR_ANNOTATION, LAST_MODIFIER_ANNOTATION):
            if name in before:
                annotations[name] = before[name]
            else:
                annotations.pop(name, None)
        if replace(old, meta=obj.meta) != obj:  # the spec changed
            annotations[LAST_MODIFIER_ANNOTATION] = user
    return replace(obj, meta=replace(obj.meta, annotations=annotations))


def _apply_service(state: State, svc: Service, now: float) -> str:
    ns, name = key = (svc.meta.namespace, svc.meta.name)
    for kind, child in (
        ("Configuration", state.configurations.get(key)),
        ("Route", state.routes.get(key)),
    ):
        if child is not None and child.service != name:
            raise TemplateConflict(
                "metadata.name",
                f"{kind} {ns}/{name} already exists and is not "
                "owned by a Service of that name; delete it first",
            )
    old = state.services.get(key)
    if old is not None and old.applied == svc:
        return "unchanged"
    if old is None:
        state.services[key] = ServiceRecord(applied=svc, created=now)
    else:
        if (old.applied.template, old.applied.traffic) != (svc.template, svc.traffic):
            old.generation += 1  # metadata-only changes keep the generation, as in Kubernetes
        old.applied = svc
    # The children carry the Service's labels (config-domain selectors match them).
    child_meta = ObjectMeta(
        name=name,
        namespace=ns,
        labels={**svc.meta.labels, SERVICE_LABEL: name},
        annotations=dict(svc.meta.annotations),
    )
    _upsert_configuration(state, key, child_meta, svc.template, service=name, applied=None, now=now)
    _upsert_route(
        state, key, child_meta, routes.service_traffic(svc), service=name, applied=None, now=now
    )
    return "created" if old is None else "configured"


def _apply_configuration(state: State, obj: Configuration, now: float) -> str:
    key = (obj.meta.namespace, obj.meta.name)
    cfg = state.configurations.get(key)
    if cfg is not None and cfg.service:
        raise _owned("Configuration", *key, cfg.service)
    if cfg is not None and cfg.applied == obj:
        return "unchanged"
    _upsert_configuration(state, key, obj.meta, obj.template, service="", applied=obj, now=now)
    return "created" if cfg is None else "configured"


def _apply_route(state: State, obj: Route, now: float) -> str:
    key = (obj.meta.namespace, obj.meta.name)
    route = state.routes.get(key)
    if route is not None and route.service:
        raise _owned("Route", *key, route.service)
    if route is not None and route.applied == obj:
        return "unchanged"
    _upsert_route(state, key, obj.meta, routes.route_traffic(obj), service="", applied=obj, now=now)
    return "created" if route is None else "configured"


def _apply_domain_mapping(state: State, obj: DomainMapping, now: float) -> str:
    key = (obj.meta.namespace, obj.meta.name)
    record = state.domain_mappings.get(key)
    if record is None:
        state.domain_mappings[key] = DomainMappingRecord(applied=obj, created=now)
        return "created"
    if record.applied == obj:
        return "unchanged"
    if record.applied.ref != obj.ref:
        record.generation += 1
    record.applied = obj
    return "configured"


IMMUTABLE = "field is immutable when `immutable` is set"
"""The API server's words for a change of an immutable ConfigMap's or Secret's data."""
GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
"""Kubernetes' alphabet for ``generateName`` suffixes (no vowels, no look-alikes)."""
GENERATED_SUFFIX = 5
MAX_GENERATE_PREFIX = 63 - GENERATED_SUFFIX
"""The API server cuts a longer ``generateName`` to this, as ``names.SimpleNameGenerator``."""


class Refused(Exception):
    """An object the API server would refuse as it stands; ``problems`` are (path, rule)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{p}: {r}" for p, r in problems))
        self.problems = problems


def _immutable_changes(
    old: ConfigMapObject | SecretObject, new: ConfigMapObject | SecretObject
) -> list[tuple[str, str]]:
    """What the API server refuses in an update (ValidateConfigMapUpdate/ValidateSecretUpdate):
    a Secret's ``type`` never changes; once ``immutable`` is true, neither it nor the data."""
    problems: list[tuple[str, str]] = []
    if isinstance(old, SecretObject) and isinstance(new, SecretObject) and old.type != new.type:
        problems.append(("type", "field is immutable"))
    if not old.immutable:
        return problems
    if not new.immutable:
        problems.append(("immutable", IMMUTABLE))
    if dict(old.data) != dict(new.data):
        problems.append(("data", IMMUTABLE))
    if (
        isinstance(old, ConfigMapObject)
        and isinstance(new, ConfigMapObject)
        and dict(old.binary_data) != dict(new.binary_data)
    ):
        problems.append(("binaryData", IMMUTABLE))
    return problems


def _apply_data(state: State, obj: ConfigMapObject | SecretObject, now: float) -> str:
    """Store a ConfigMap or Secret. Revisions read it when a replica starts (as the
    kubelet does at container creation), so storing it changes no revision."""
    key = (obj.meta.namespace, obj.meta.name)
    if isinstance(obj, SecretObject):
        old: ConfigMapObject | SecretObject | None = state.secrets.get(key)
        if old is not None:
            problems = _immutable_changes(old, obj)
            if problems:
                raise Refused(problems)
        state.secrets[key] = obj
    else:
        old = state.config_maps.get(key)
        if old is not None:
            problems = _immutable_changes(old, obj)
            if problems:
                raise Refused(problems)
        state.config_maps[key] = obj
    if old is None:
        state.created[(obj.kind, *key)] = now
        return "created"
    return "unchanged" if old == obj else "configured"


class Controller:
    """Knative's Service/Configuration/Revision/Route semantics over in-memory state.

    ``local`` adds the local-mode rules (a container ``command`` is required);
    ``default_domain`` is the domain when ``config-domain`` names none (None:
    ``localhost``); ``rng`` makes ``generateName`` suffixes (tests pass a seeded one).
    """

    def __init__(
        self,
        now: float,
        *,
        local: bool = True,
        default_domain: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._local = local
        self.sandbox = False
        """Local replicas run in pod sandboxes (volumes can be mounted): ``zeroserve up``
        sets it once it has chosen its mode."""
        self._rng = rng or random.Random()
        self._default_domain = default_domain or LOCAL_DOMAIN
        self._now = now
        self._state = State(configs=self._base_configs())
        self._version = 1
        self._commits = 0
        self._published = self._snapshot()

    # ----- runtime-facing outputs ----------------------------------------------------------

    @property
    def version(self) -> int:
        """Grows by one whenever ``revisions()``, ``routing_table()`` or ``configs`` change."""
        return self._version

    @property
    def configs(self) -> Configs:
        """The settings in force (config-autoscaler, -deployment, -defaults, -domain)."""
        return self._state.configs

    def config_data(self, name: str) -> dict[str, str]:
        """The ``data`` of an applied ``knative-serving`` ConfigMap; empty when not applied."""
        cm = self._state.config_maps.get((SYSTEM_NAMESPACE, name))
        return dict(cm.data) if cm is not None else {}

    def lookup(self, kind: str, namespace: str, name: str) -> ConfigMapObject | SecretObject | None:
        """An applied ``Secret`` or ``ConfigMap`` (``kind``) as it is now, for the runtime
        that resolves env references when a replica starts; None when there is none."""
        if kind == "Secret":
            return self._state.secrets.get((namespace, name))
        if kind == "ConfigMap":
            return self._state.config_maps.get((namespace, name))
        return None

    def revisions(self) -> dict[RevisionKey, DesiredRevision]:
        """Every revision with what it takes to run it; ``info.reachable`` as upstream."""
        live = routes.reachable(self._state)
        return {
            key: desired_revision(rev, reachable=key in live)
            for key, rev in sorted(self._state.revisions.items())
        }

    def routing_table(self) -> list[TopologyRoute]:
        """Every route that has been programmed, then every ready DomainMapping's domain,
        for the activator."""
        table = routes.routing_table(self._state)
        return table + domainmapping.routes(self._state, table=table)

    @property
    def commits(self) -> int:
        """Counts the changes of the state (each one a commit): the objects :meth:`get`
        returns are the same while it stays."""
        return self._commits

    def next_wakeup(self, now: float) -> float | None:
        """When :meth:`tick` has work next: the earliest of the next garbage-collection
        deadline and the next rollout step; ``now`` when overdue; None: nothing pending."""
        st = self._state
        times = [gc.next_deadline(st, st.configs.gc, now)]
        rollout = getattr(routes, "next_rollout_step", None)
        if rollout is not None:
            times.append(rollout(st, now))
        due = [t for t in times if t is not None]
        return min(due) if due else None

    def tick(self, now: float) -> None:
        """Reconcile at ``now`` (rollout steps, garbage collection) and publish."""
        reconcile(self._state, now)
        gc.collect(self._state, now)
        self._commit(self._state, now)

    # ----- desired state in ----------------------------------------------------------------

    def apply(self, objects: Sequence[Object], *, now: float, user: str = "") -> list[str]:
        """Validate everything, then apply everything, or nothing (``ManifestErrors``).

        ``user`` (locally, the OS user running zeroserve) goes into the
        ``serving.knative.dev/creator`` and ``lastModifier`` annotations of Services,
        Configurations and Routes, as Knative's webhook puts the requesting user there.

        ConfigMaps (and Secrets) are taken first, so settings in the same batch apply to
        the other objects in it. An object with ``generateName`` and no name gets a new
        name (the prefix and five random characters, as the API server makes one at
        creation). Returns one kubectl-style line per object, in the given order."""
        staged = copy.deepcopy(self._state)
        objects = [_with_user_info(staged, self._named(staged, o), user) for o in objects]
        errors: dict[int, list[ManifestError]] = {}
        configs = staged.configs
        order = sorted(
            range(len(objects)),
            key=lambda i: not isinstance(objects[i], ConfigMapObject | SecretObject),
        )
        seen: set[tuple[str, str, str]] = set()
        for i in order:
            obj = objects[i]
            ident = (obj.kind, obj.meta.namespace, obj.meta.name)
            if ident in seen:
                errors[i] = [ManifestError(obj.source, obj.label, "", "given twice in one apply")]
                continue
            seen.add(ident)
            found = validate(obj, configs, local=self._local, sandbox=self.sandbox)
            if found:
                errors[i] = found
            elif isinstance(obj, ConfigMapObject) and obj.is_setting:
                configs = configs.with_config_map(
                    obj.meta.name, obj.data, default_domain=self._default_domain
                )
        staged.configs = configs
        verbs: dict[int, str] = {}
        for i in order:
            if i in errors:
                continue
            obj = objects[i]
            try:
                verbs[i] = self._apply_one(staged, obj, now)
            except TemplateConflict as c:
                errors[i] = [ManifestError(obj.source, obj.label, c.path, c.rule)]
            except Refused as r:
                errors[i] = [
                    ManifestError(obj.source, obj.label, p, rule) for p, rule in r.problems
                ]
        if errors:
            raise ManifestErrors(e for i in sorted(errors) for e in errors[i])
        reconcile(staged, now)
        gc.collect(staged, now)
        self._commit(staged, now)
        return [
            f"{kinds.kind_of(o.kind).qualified}/{o.meta.name} {verbs[i]}"
            for i, o in enumerate(objects)
        ]

    def _named(self, state: State, obj: Object) -> Object:
        """``obj`` with a generated name when it has only ``generateName``."""
        prefix = obj.meta.generate_name
        if obj.meta.name or not prefix:
            return obj
        prefix = prefix[:MAX_GENERATE_PREFIX]
        taken: dict[str, Container[Key]] = {
            "Service": state.services,
            "Configuration": state.configurations,
            "Route": state.routes,
            "ConfigMap": state.config_maps,
            "Secret": state.secrets,
            "DomainMapping": state.domain_mappings,
        }
        while True:
            name = prefix + "".join(self._rng.choices(GENERATE_ALPHABET, k=GENERATED_SUFFIX))
            if (obj.meta.namespace, name) not in taken[obj.kind]:
                return replace(obj, meta=replace(obj.meta, name=name))

    @staticmethod
    def _apply_one(state: State, obj: Object, now: float) -> str:
        if isinstance(obj, ConfigMapObject | SecretObject):
            return _apply_data(state, obj, now)
        if isinstance(obj, Service):
            return _apply_service(state, obj, now)
        if isinstance(obj, Configuration):
            return _apply_configuration(state, obj, now)
        if isinstance(obj, DomainMapping):
            return _apply_domain_mapping(state, obj, now)
        return _apply_route(state, obj, now)

    def delete(self, kind: str, namespace: str, name: str, *, now: float | None = None) -> str:
        """Delete one object (``now`` defaults to the last time seen). A Service takes its
        Configuration, Revisions and Route with it; owned objects and single revisions
        cannot be deleted on their own. Returns kubectl's line."""
        k = kinds.resolve_kind(kind)
        st = self._state
        key = (namespace, name)
        if k is kinds.REVISION:
            raise kinds.NotAllowed("revisions are deleted with their Configuration (or Service)")
        if k is kinds.SECRET:
            if key not in st.secrets:
                raise k.not_found(namespace, name)
            del st.secrets[key]
            st.created.pop((k.name, *key), None)
        elif k is kinds.CONFIG_MAP:
            cm = st.config_maps.pop(key, None)
            if cm is None:
                raise k.not_found(namespace, name)
            st.created.pop((k.name, *key), None)
            if cm.is_setting:
                configs = self._base_configs()
                for setting in st.settings_maps():
                    configs = configs.with_config_map(
                        setting.meta.name, setting.data, default_domain=self._default_domain
                    )
                st.configs = configs
        elif k is kinds.DOMAIN_MAPPING:
            if st.domain_mappings.pop(key, None) is None:
                raise k.not_found(namespace, name)
            # Its claim is released by the reconcile below (domainmapping.claim).
        elif k is kinds.SERVICE:
            if key not in st.services:
                raise k.not_found(namespace, name)
            del st.services[key]
            self._drop_configuration(key)
            del st.routes[key]
        else:
            record = (st.configurations if k is kinds.CONFIGURATION else st.routes).get(key)
            if record is None:
                raise k.not_found(namespace, name)
            if record.service:
                raise kinds.NotAllowed(
                    f'{k.singular} "{name}" is owned by Service '
                    f"{namespace}/{record.service}; delete the Service"
                )
            if k is kinds.CONFIGURATION:
                self._drop_configuration(key)
            else:
                del st.routes[key]
        now = self._now if now is None else now
        reconcile(st, now)
        gc.collect(st, now)
        self._commit(st, now)
        return f'{k.qualified} "{name}" deleted'

    def _drop_configuration(self, key: Key) -> None:
        cfg = self._state.configurations.pop(key)
        for rev in cfg.revisions:
            del self._state.revisions[RevisionKey(cfg.namespace, rev)]

    # ----- observed state in ---------------------------------------------------------------

    def set_revision_state(
        self,
        key: RevisionKey,
        *,
        ready: bool | None,
        reason: str = "",
        message: str = "",
        desired_replicas: int | None = None,
        actual_replicas: int | None = None,
        now: float,
    ) -> bool:
        """Record what the runtime sees of a revision; False if the revision is unknown
        (deleted meanwhile).

        ``ready``: True once a replica passed its readiness probe; False when the revision
        failed (``reason`` a Knative reason such as ``ExitCode1`` or
        ``ProgressDeadlineExceeded``, ``message`` the runtime's words); None for no verdict.
        Before the first verdict the revision is Deploying; after it, None keeps the last
        verdict -- so a ready revision scaled to zero stays Ready, as a Knative Revision
        does (only its ``Active`` condition changes)."""
        rev = self._state.revisions.get(key)
        if rev is None:
            return False
        if ready is None and rev.observed.ready is not None:
            last = rev.observed
            ready, reason, message = last.ready, reason or last.reason, message or last.message
        observed = Observed(
            ready=ready,
            reason=reason,
            message=message,
            desired_replicas=desired_replicas,
            actual_replicas=actual_replicas,
        )
        if observed == rev.observed:
            # Nothing new: what reconcile derives from it is in the state already, and
            # work due at a time runs in ``tick``. The local runtime reports every
            # revision at each change of any (docs/local-mode.md, "Cold start CPU").
            self._now = max(self._now, now)
            return True
        rev.observed = observed
        reconcile(self._state, now)
        gc.collect(self._state, now)
        self._commit(self._state, now)
        return True

    # ----- views ---------------------------------------------------------------------------

    def get(self, kind: str, namespace: str | None = None, name: str | None = None) -> list[Obj]:
        """Kubernetes-shaped objects; ``namespace`` None lists every namespace (with a
        ``name``, None means ``default``, or ``knative-serving`` for ConfigMaps)."""
        k = kinds.resolve_kind(kind)
        if name is not None and namespace is None:
            namespace = SYSTEM_NAMESPACE if k is kinds.CONFIG_MAP else "default"
        return views.get(self._state, k, namespace, name)

    def table(
        self,
        kind: str,
        namespace: str | None = None,
        name: str | None = None,
        *,
        all_namespaces: bool | None = None,
        now: float | None = None,
    ) -> tuple[list[str], list[list[str]]]:
        """(headers, rows) with kubectl's columns for the kind, for the same objects as
        :meth:`get`. A leading NAMESPACE column (kubectl's ``-A``) when
        ``all_namespaces``; None: only when the rows come from several namespaces.
        ``now`` dates the AGE columns (default: the last time seen)."""
        objects = self.get(kind, namespace, name)
        if all_namespaces is None:
            all_namespaces = len({o["metadata"]["namespace"] for o in objects}) > 1
        return views.table(
            kinds.resolve_kind(kind),
            objects,
            all_namespaces=all_namespaces,
            now=self._now if now is None else now,
        )

    def tree(self, namespace: str, service: str) -> Obj:
        """Service -> Configuration -> Revisions, and the Route, as plain data
        (see :func:`zeroserve.serving.views.tree`)."""
        return views.tree(self._state, namespace, service)

    # ----- internals -----------------------------------------------------------------------

    def _base_configs(self) -> Configs:
        return Configs(domain=DomainConfig({self._default_domain: {}}))

    def _snapshot(self) -> tuple[object, ...]:
        return (self.revisions(), self.routing_table(), self._state.configs)

    def _commit(self, state: State, now: float) -> None:
        self._state = state
        self._now = max(self._now, now)
        self._commits += 1
        snapshot = self._snapshot()
        if snapshot != self._published:
            self._published = snapshot
            self._version += 1
