"""One reconcile pass, pure: the watched objects in, the API writes that converge the
cluster out.

The steps mirror the pure controller (``zeroserve.serving``) object for object:

1. every valid Service gets its Configuration and Route (same name, owned by it) with the
   Service's template and its defaulted traffic;
2. every Configuration gets the Revision of its current generation
   (``<configuration>-<generation:05d>``, or ``template.metadata.name``), created once,
   with ``config-defaults`` applied, and never rewritten;
3. the records of all objects, with each revision's pods as observed, go through the
   pure ``reconcile`` (latest ready revisions, route resolution, conditions);
4. each revision gets its Deployment and private Service, its ``routingState`` label,
   and its status; then the Configurations', the Routes' (and each Route's
   VirtualService and placeholder Services), and the Services' statuses.

A route's gradual-rollout state survives between passes (which rebuild every record from
the caches) as the annotation ``networking.internal.knative.dev/rollout`` of its
VirtualService ``<route>-ingress``: read back before the pure reconcile, written with the
VirtualService after it (before the Route's status), as Knative keeps it on the Ingress.

A Service whose Configuration or Route is being written in this pass gets its status in
the next one, computed from the updated children. An invalid object gets ``Ready=False``
with the validation message and changes nothing else (the last good children stay).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable

from controller import domainmapping, ingress, policies, snapshot, workloads
from controller.config import IstioGateways, Settings, default_gateways
from controller.meta import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    ROUTE_LABEL,
    compact,
    controlled_by,
    created_at,
    generation_of,
    hash_of,
    inherited_annotations,
    labels_of,
    meta,
    owner_name,
    owner_reference,
)
from controller.observe import observe
from controller.snapshot import ClusterView, Objects
from controller.writes import Write, replacing, status_patch
from zeroserve.api.configs import Configs
from zeroserve.api.objects import Configuration, Obj, ObjectMeta, RevisionTemplate, Route, Service
from zeroserve.api.validate import CLUSTER_LOCAL, VISIBILITY_LABEL
from zeroserve.autoscaling.annotations import RevisionAutoscaling
from zeroserve.knative import (
    CONFIGURATION_LABEL,
    REVISION_LABEL,
    ROUTING_STATE_LABEL,
    SERVICE_LABEL,
    deployment_name,
)
from zeroserve.kube import (
    CONFIGURATIONS,
    DEPLOYMENTS,
    KSERVICES,
    REVISIONS,
    ROUTES,
    SERVICES,
    VIRTUAL_SERVICES,
    ObjectKey,
    ResourceRef,
)
from zeroserve.serving import rollout, views
from zeroserve.serving.controller import reconcile
from zeroserve.serving.gc import collectable, next_deadline
from zeroserve.serving.revisions import (
    TemplateConflict,
    desired_revision,
    new_revision,
    revision_name,
)
from zeroserve.serving.routes import (
    next_rollout_step,
    reachable,
    referenced,
    route_hosts,
    route_traffic,
    routing_state,
    service_traffic,
)
from zeroserve.serving.state import (
    FALSE,
    Condition,
    ConfigurationRecord,
    RevisionRecord,
    RouteRecord,
    ServiceRecord,
    State,
)
from zeroserve.serving.status import (
    READY,
    conditions_list,
    configuration_status,
    refresh_services,
    revision_status,
    rfc3339,
    route_status,
    service_status,
)
from zeroserve.topology import RevisionKey

log = logging.getLogger(__name__)

INVALID = "InvalidSpec"
NOT_OWNED = "NotOwned"
TAG_HEADER_FEATURE = "tag-header-based-routing"


def _failed(obj: Obj, reason: str, message: str, now: float) -> Obj:
    """The object's status with Ready=False for ``reason`` (other conditions kept)."""
    conditions = snapshot.conditions_of(obj)
    old = conditions.get(READY)
    since = old.since if old is not None and old.status == FALSE else now
    conditions[READY] = Condition(READY, FALSE, reason, message, since)
    status = dict(obj.get("status") or {})
    status.update(observedGeneration=generation_of(obj), conditions=conditions_list(conditions))
    return status


class Planner:
    """Builds the writes of one pass; use :func:`plan`."""

    def __init__(
        self,
        view: ClusterView,
        configs: Configs,
        image: str,
        settings: Settings,
        now: float,
        gateways: IstioGateways | None = None,
    ) -> None:
        self.view, self.configs, self.image, self.settings, self.now = (
            view,
            configs,
            image,
            settings,
            now,
        )
        self.gateways = gateways or default_gateways(settings.system_namespace)
        self.next_due: float | None = None
        """When a pass is due again whatever the caches say (a rollout step), Unix time."""
        self.collected: set[RevisionKey] = set()
        """Revisions garbage-collected in this pass (their objects are deleted)."""
        self.state = State(configs=configs)
        self.writes: list[Write] = []
        self.valid_services: dict[ObjectKey, tuple[Obj, Service]] = {}
        self.pending: set[ObjectKey] = set()
        """Services whose children are written in this pass (status next pass)."""
        self.invalid_configurations: dict[ObjectKey, str] = {}
        """Configurations that cannot make their revision, and why."""

    def add(self, write: Write | None) -> None:
        if write is not None:
            self.writes.append(write)

    def fail(self, ref: ResourceRef, obj: Obj, reason: str, message: str) -> None:
        self.add(status_patch(ref, obj, _failed(obj, reason, message, self.now)))

    # ----- 1. Services -> Configuration and Route ------------------------------------------

    def services(self) -> None:
        for key, obj in sorted(self.view.services.items()):
            parsed, problem = snapshot.parse_object(obj, self.configs)
            if parsed is None:
                self.fail(KSERVICES, obj, INVALID, problem)
                continue
            assert isinstance(parsed, Service)
            labels = {**parsed.meta.labels, SERVICE_LABEL: key[1]}
            annotations = inherited_annotations(parsed.meta.annotations)
            children = (
                (
                    CONFIGURATIONS,
                    self.view.configurations,
                    "Configuration",
                    {"template": copy.deepcopy(obj["spec"]["template"])},
                ),
                (
                    ROUTES,
                    self.view.routes,
                    "Route",
                    {"traffic": [t.to_dict() for t in service_traffic(parsed)]},
                ),
            )
            owned = True
            for ref, existing, kind, spec in children:
                child = existing.get(key)
                if child is None:
                    self.pending.add(key)
                    self.add(
                        Write(
                            "create",
                            ref,
                            key[0],
                            key[1],
                            body={
                                "apiVersion": ref.api_version,
                                "kind": kind,
                                "metadata": {
                                    "name": key[1],
                                    "namespace": key[0],
                                    "labels": labels,
                                    "annotations": annotations,
                                    "ownerReferences": [owner_reference(obj)],
                                },
                                "spec": spec,
                            },
                        )
                    )
                elif not controlled_by(child, obj):
                    owned = False
                    self.fail(
                        KSERVICES,
                        obj,
                        NOT_OWNED,
                        f'There is an existing {kind} "{key[1]}" that we do not own.',
                    )
                elif (
                    child.get("spec"),
                    labels_of(child),
                    meta(child).get("annotations") or {},
                ) != (spec, labels, annotations):
                    self.pending.add(key)
                    self.add(
                        Write(
                            "update",
                            ref,
                            key[0],
                            key[1],
                            current=child,
                            mutate=replacing({"spec": spec}, labels, annotations),
                        )
                    )
            if owned:
                self.valid_services[key] = (obj, parsed)

    # ----- 2. Configurations -> Revisions, and the records ---------------------------------

    def configurations(self) -> None:
        revisions_of = snapshot.by_label(self.view.revisions, CONFIGURATION_LABEL)
        slices_of = snapshot.by_label(self.view.endpoint_slices, REVISION_LABEL)
        pods_of = snapshot.by_label(self.view.pods, REVISION_LABEL)
        defaults = self.configs.defaults
        for key, obj in sorted(self.view.configurations.items()):
            parsed, problem = snapshot.parse_object(obj, self.configs)
            template = parsed.template if isinstance(parsed, Configuration) else RevisionTemplate()
            status = obj.get("status") or {}
            cfg = ConfigurationRecord(
                namespace=key[0],
                name=key[1],
                meta=parsed.meta if parsed is not None else ObjectMeta(key[1], key[0]),
                template=template,
                service=owner_name(obj, "Service"),
                created=created_at(obj),
                generation=generation_of(obj),
                conditions=snapshot.conditions_of(obj),
            )
            owned = sorted(
                (r for r in revisions_of.get(key, ()) if controlled_by(r, obj)),
                key=snapshot.creation_order,
            )
            for rev in owned:
                record = snapshot.revision_record(rev, defaults)
                if record is None:
                    continue
                seen = observe(
                    self.view.deployments.get((key[0], deployment_name(record.key.name))),
                    slices_of.get(record.key, ()),
                    pods_of.get(record.key, ()),
                    user_container=record.container_name,
                )
                record.observed = snapshot.merge(record.observed, seen)
                self.state.revisions[record.key] = record
                cfg.revisions.append(record.key.name)
            if status.get("latestReadyRevisionName") in cfg.revisions:
                cfg.latest_ready = status["latestReadyRevisionName"]
            if status.get("latestCreatedRevisionName") in cfg.revisions:
                cfg.latest_created = status["latestCreatedRevisionName"]
            self.state.configurations[key] = cfg
            if parsed is None:
                self.invalid_configurations[key] = problem
                continue
            try:
                self._latest_revision(obj, cfg, template)
            except TemplateConflict as conflict:
                self.invalid_configurations[key] = f"{conflict.path}: {conflict.rule}"

    def _latest_revision(
        self, obj: Obj, cfg: ConfigurationRecord, template: RevisionTemplate
    ) -> None:
        name = template.name or revision_name(cfg.name, cfg.generation)
        key = RevisionKey(cfg.namespace, name)
        existing = self.view.revisions.get(key)
        if existing is None:
            new_revision(self.state, cfg, template, self.configs.defaults, self.now)
            return
        if not controlled_by(existing, obj):
            raise TemplateConflict(
                "spec.template.metadata.name" if template.name else "metadata.name",
                f"revision {name} already exists and does not belong to this Configuration "
                f"(Configuration {labels_of(existing).get(CONFIGURATION_LABEL, '?')})",
            )
        if template.name and not snapshot.same_template(existing, template):
            raise TemplateConflict(
                "spec.template.metadata.name",
                f"{name!r} already names a revision with a different template; a revision "
                "cannot change, so give the changed template a new name",
            )
        if key in self.state.revisions:
            cfg.latest_created = name

    # ----- Routes and Services: records -----------------------------------------------------

    def routes(self) -> None:
        for key, obj in sorted(self.view.routes.items()):
            parsed, problem = snapshot.parse_object(obj, self.configs)
            if parsed is None:
                self.fail(ROUTES, obj, INVALID, problem)
                continue
            assert isinstance(parsed, Route)
            conditions = snapshot.conditions_of(obj)
            record = RouteRecord(
                namespace=key[0],
                name=key[1],
                meta=parsed.meta,
                traffic=route_traffic(parsed),
                service=owner_name(obj, "Service"),
                created=created_at(obj),
                generation=generation_of(obj),
                programmed=snapshot.programmed_traffic(obj, self.state.revisions),
                conditions=conditions,
            )
            if "AllTrafficAssigned" in conditions:
                record.assignment = conditions["AllTrafficAssigned"]
            record.cluster_local_tags = self.cluster_local_tags(key[0], key[1])
            record.rollout = self.rollout_of(obj)
            self.state.routes[key] = record
        for key, (obj, svc) in self.valid_services.items():
            if key in self.state.configurations and key in self.state.routes:
                self.state.services[key] = ServiceRecord(
                    applied=svc,
                    created=created_at(obj),
                    generation=generation_of(obj),
                    conditions=snapshot.conditions_of(obj),
                )

    # ----- 4. writes from the reconciled records -------------------------------------------

    def revision_writes(self) -> None:
        served, live = referenced(self.state), reachable(self.state)
        for key, record in sorted(self.state.revisions.items()):
            if key in self.collected:
                continue
            obj = self.view.revisions.get(key)
            if obj is None:
                self.add(self._new_revision(key, served, live))
                continue
            state = record.routing_state or routing_state(key, served, live)
            patch: Obj = {}
            if labels_of(obj).get(ROUTING_STATE_LABEL) != state:
                patch["labels"] = {ROUTING_STATE_LABEL: state}
            if record.routing_state_modified is not None:
                stamp = rfc3339(record.routing_state_modified)
                if (meta(obj).get("annotations") or {}).get(snapshot.ROUTING_STATE_MODIFIED) != (
                    stamp
                ):
                    patch["annotations"] = {snapshot.ROUTING_STATE_MODIFIED: stamp}
            if patch:
                self.add(
                    Write("patch", REVISIONS, key.namespace, key.name, body={"metadata": patch})
                )
            self._workloads(obj, record, reachable=key in live)
            status = revision_status(record)
            status["observedGeneration"] = generation_of(obj)
            self.add(status_patch(REVISIONS, obj, status))

    def _new_revision(
        self, key: RevisionKey, served: set[RevisionKey], live: set[RevisionKey]
    ) -> Write:
        """The Revision object, as the pure controller shows it (labels, defaulted spec)."""
        shown = views.revision_object(self.state, key, served, live)
        config = self.view.configurations[(key.namespace, self.state.revisions[key].configuration)]
        metadata: Obj = {
            "name": key.name,
            "namespace": key.namespace,
            "labels": {**shown["metadata"]["labels"], REVISION_LABEL: key.name},
            "ownerReferences": [owner_reference(config)],
        }
        if shown["metadata"].get("annotations"):
            metadata["annotations"] = shown["metadata"]["annotations"]
        return Write(
            "create",
            REVISIONS,
            key.namespace,
            key.name,
            body={
                "apiVersion": REVISIONS.api_version,
                "kind": "Revision",
                "metadata": metadata,
                "spec": compact(shown["spec"]),
            },
        )

    def _workloads(self, revision: Obj, record: RevisionRecord, *, reachable: bool) -> None:
        desired = desired_revision(record, reachable=reachable)
        scaling = RevisionAutoscaling.read(
            desired.info.annotations,
            self.configs.autoscaler,
            container_concurrency=record.container_concurrency,
            deployment=self.configs.deployment,
        )
        initial = max(scaling.initial_scale, scaling.min_scale if reachable else 0)
        self._generated(
            DEPLOYMENTS,
            revision,
            self.view.deployments,
            workloads.deployment(
                desired,
                revision,
                image=self.image,
                replicas=initial,
                progress_deadline=scaling.progress_deadline,
                observability=self.configs.observability.to_env(),
                sidecar=self.configs.deployment,
            ),
            keep=("spec.replicas",),
        )
        self._generated(
            SERVICES,
            revision,
            self.view.private_services,
            workloads.private_service(revision),
            keep=("spec.clusterIP", "spec.clusterIPs"),
        )

    def _generated(
        self,
        ref: ResourceRef,
        owner: Obj,
        existing: Objects,
        body: Obj,
        *,
        keep: tuple[str, ...] = (),
    ) -> None:
        """Create ``body``, or bring it up to date when what was rendered changed (never
        touching an object someone else controls, nor the paths in ``keep``)."""
        m = body["metadata"]
        current = existing.get((m["namespace"], m["name"]))
        if current is None:
            self.add(Write("create", ref, m["namespace"], m["name"], body=body))
        elif controlled_by(current, owner) and hash_of(current) != hash_of(body):
            fields = {k: v for k, v in body.items() if k not in ("metadata", "apiVersion", "kind")}
            self.add(
                Write(
                    "update",
                    ref,
                    m["namespace"],
                    m["name"],
                    current=current,
                    mutate=replacing(fields, m.get("labels"), m.get("annotations"), keep=keep),
                )
            )

    def mark_invalid(self) -> None:
        """After the pure reconcile: an invalid Configuration is not Ready, whatever its
        revisions are, and its Service says so too."""
        for key, problem in self.invalid_configurations.items():
            cfg = self.state.configurations[key]
            old = cfg.conditions.get(READY)
            since = old.since if old is not None and old.status == FALSE else self.now
            cfg.conditions = {READY: Condition(READY, FALSE, INVALID, problem, since)}
        refresh_services(self.state, self.now)

    def configuration_writes(self) -> None:
        for key, cfg in sorted(self.state.configurations.items()):
            self.add(
                status_patch(
                    CONFIGURATIONS, self.view.configurations[key], configuration_status(cfg)
                )
            )

    def cluster_local_tags(self, namespace: str, route: str) -> frozenset[str]:
        """Tags made cluster-local by the label ``networking.knative.dev/visibility:
        cluster-local`` on their placeholder Service ``{tag}-{route}`` (Knative's per-tag
        rule), read from the cluster; the shared host computation (``route_hosts``) then
        gives them no external name, in the status URLs and the VirtualServices alike."""
        prefix_end = f"-{route}"
        return frozenset(
            name[: -len(prefix_end)]
            for (ns, name), svc in self.view.placeholders.items()
            if ns == namespace
            and name.endswith(prefix_end)
            and len(name) > len(prefix_end)
            and labels_of(svc).get(ROUTE_LABEL) == route
            and labels_of(svc).get(VISIBILITY_LABEL) == CLUSTER_LOCAL
        )

    def ingress_of(self, route: Obj) -> Obj | None:
        """The route's VirtualService ``<route>-ingress``, if the route controls it."""
        if self.view.virtual_services is None:
            return None
        m = meta(route)
        vs = self.view.virtual_services.get(
            (m["namespace"], ingress.virtual_service_name(m["name"]))
        )
        return vs if vs is not None and controlled_by(vs, route) else None

    def rollout_of(self, route: Obj) -> rollout.Rollout | None:
        """The gradual-rollout state the previous pass left on the route's VirtualService
        (the annotation ``ingress.ROLLOUT_ANNOTATION``, as Knative keeps it on the
        route's Ingress); None (no history: new traffic takes effect at once) when there
        is no VirtualService or its annotation is missing or unreadable."""
        vs = self.ingress_of(route)
        text = (meta(vs).get("annotations") or {}).get(ingress.ROLLOUT_ANNOTATION) if vs else None
        return rollout.from_json(text if isinstance(text, str) else None)

    def rollout_text(self, route: Obj, state: rollout.Rollout | None) -> str:
        """The annotation for ``state`` ("" for none); the text already written when it
        says the same, so that an unchanged rollout never rewrites the VirtualService."""
        if state is None:
            return ""
        vs = self.ingress_of(route)
        current = (
            (meta(vs).get("annotations") or {}).get(ingress.ROLLOUT_ANNOTATION) if vs else None
        )
        if isinstance(current, str) and rollout.from_json(current) == state:
            return current
        return rollout.to_json(state)

    def route_writes(self) -> None:
        domain = self.settings.cluster_domain
        tag_header = self.configs.features.allows(TAG_HEADER_FEATURE)
        for key, route in sorted(self.state.routes.items()):
            obj = self.view.routes[key]
            self.route_ingress_writes(key, obj, route, tag_header)
            # After the VirtualService: the rollout state is kept before the traffic moves.
            self.add(
                status_patch(ROUTES, obj, route_status(self.state, route, cluster_domain=domain))
            )

    def _h2c(self, namespace: str, route: RouteRecord) -> bool:
        """Whether a revision the route sends traffic to speaks h2c (its port's name)."""
        for target in route.programmed or ():
            record = self.state.revisions.get(RevisionKey(namespace, target.revision))
            if record is not None and record.template.container.port.name == "h2c":
                return True
        return False

    def route_ingress_writes(
        self, key: ObjectKey, obj: Obj, route: RouteRecord, tag_header: bool
    ) -> None:
        """The route's VirtualServices (with its rollout state) and placeholder Services."""
        domain = self.settings.cluster_domain
        if route.programmed is None:
            return
        tags = sorted({t.tag for t in route.programmed if t.tag})
        local_tags = route.cluster_local_tags
        splits = [
            ingress.split_of(
                route_hosts(self.state, route, tag=tag, cluster_domain=domain),
                tag,
                cluster_local=tag in local_tags,
            )
            for tag in ("", *tags)
        ]
        if self.view.virtual_services is not None:
            wanted = ingress.virtual_services(
                obj,
                splits,
                self.gateways,
                self.settings,
                tag_header=tag_header,
                rollout=self.rollout_text(obj, route.rollout),
                h2c=self._h2c(key[0], route),
            )
            for body in wanted.values():
                if body is not None:
                    self._generated(VIRTUAL_SERVICES, obj, self.view.virtual_services, body)
            for (ns, name), vs in self.view.virtual_services.items():
                if (
                    ns == key[0]
                    and wanted.get(name) is None
                    and controlled_by(vs, obj)
                    and labels_of(vs).get(ROUTE_LABEL) == key[1]
                ):
                    self.add(Write("delete", VIRTUAL_SERVICES, ns, name))
        names = {f"{tag}-{key[1]}" if tag else key[1]: tag for tag in ("", *tags)}
        for name, tag in sorted(names.items()):
            self._generated(
                SERVICES,
                obj,
                self.view.placeholders,
                ingress.placeholder_service(
                    obj, name, self.settings, cluster_local=tag in local_tags
                ),
            )
        for (ns, name), placeholder in self.view.placeholders.items():
            if (
                ns == key[0]
                and name not in names
                and controlled_by(placeholder, obj)
                and labels_of(placeholder).get(ROUTE_LABEL) == key[1]
            ):
                self.add(Write("delete", SERVICES, ns, name))  # a tag that was removed

    # ----- DomainMappings ------------------------------------------------------------------

    def domain_mapping_writes(self) -> None:
        """Each DomainMapping: its claim, its reference, its VirtualService, its status
        (``controller/domainmapping.py``)."""
        mappings = self.view.domain_mappings
        if mappings is None:
            return
        claims = self.view.domain_claims or {}
        objects = {
            ("serving.knative.dev", "Service"): self.view.services,
            ("serving.knative.dev", "Route"): self.view.routes,
        }
        network = self.configs.network
        for key, obj in sorted(mappings.items()):
            finalizers = list(meta(obj).get("finalizers") or [])
            if meta(obj).get("deletionTimestamp"):
                self._finalize_mapping(obj, finalizers, claims)
                continue
            if domainmapping.FINALIZER not in finalizers:
                self.add(
                    Write(
                        "patch",
                        domainmapping.DOMAIN_MAPPINGS,
                        key[0],
                        key[1],
                        body={"metadata": {"finalizers": [*finalizers, domainmapping.FINALIZER]}},
                    )
                )
            parsed, problem = snapshot.parse_object(obj, self.configs)
            if parsed is None:
                self.fail(domainmapping.DOMAIN_MAPPINGS, obj, INVALID, problem)
                continue
            claim = domainmapping.claim(
                obj, claims, autocreate=network.autocreate_cluster_domain_claims
            )
            if claim.create is not None:
                self.add(
                    Write(
                        "create",
                        domainmapping.CLUSTER_DOMAIN_CLAIMS,
                        "",
                        key[1],
                        body=claim.create,
                    )
                )
            resolved: str | None = None
            ready = False
            if claim.owned:
                host, resolved = domainmapping.resolve(obj, objects, self.settings.cluster_domain)
                if host and self.view.virtual_services is not None:
                    body = ingress.domain_mapping_virtual_service(
                        obj, host, self.gateways, self.settings
                    )
                    current = self.view.virtual_services.get((key[0], body["metadata"]["name"]))
                    ready = current is not None and hash_of(current) == hash_of(body)
                    self._generated(VIRTUAL_SERVICES, obj, self.view.virtual_services, body)
            status = domainmapping.status(
                obj,
                snapshot.conditions_of(obj),
                claimed=claim.owned,
                resolved=resolved,
                ingress_ready=ready,
                scheme=network.default_external_scheme,
                now=self.now,
            )
            self.add(status_patch(domainmapping.DOMAIN_MAPPINGS, obj, status))

    def _finalize_mapping(self, obj: Obj, finalizers: list[str], claims: Objects) -> None:
        """A deleted mapping gives its domain back (Knative's ``FinalizeKind``): with
        autocreate on, the claim it holds is deleted; then the finalizer is removed."""
        if domainmapping.FINALIZER not in finalizers:
            return
        m = meta(obj)
        if domainmapping.releases_claim(
            obj, claims, autocreate=self.configs.network.autocreate_cluster_domain_claims
        ):
            self.add(Write("delete", domainmapping.CLUSTER_DOMAIN_CLAIMS, "", m["name"]))
        self.add(
            Write(
                "patch",
                domainmapping.DOMAIN_MAPPINGS,
                m["namespace"],
                m["name"],
                body={
                    "metadata": {
                        "finalizers": [f for f in finalizers if f != domainmapping.FINALIZER]
                    }
                },
            )
        )

    # ----- NetworkPolicies -----------------------------------------------------------------

    def network_policy_writes(self) -> None:
        """The revisions' NetworkPolicy in every namespace with a Revision, owned by them."""
        existing = self.view.network_policies
        if existing is None or not self.settings.network_policies:
            return
        by_namespace: dict[str, list[Obj]] = {}
        for (ns, _), revision in self.view.revisions.items():
            if RevisionKey(ns, meta(revision)["name"]) not in self.collected:
                by_namespace.setdefault(ns, []).append(revision)
        for ns, revisions in sorted(by_namespace.items()):
            body = policies.network_policy(ns, revisions, self.settings)
            name = body["metadata"]["name"]
            current = existing.get((ns, name))
            if current is None:
                self.add(Write("create", policies.NETWORK_POLICIES, ns, name, body=body))
            elif labels_of(current).get(MANAGED_BY_LABEL) == MANAGED_BY and hash_of(
                current
            ) != hash_of(body):
                self.add(
                    Write(
                        "update",
                        policies.NETWORK_POLICIES,
                        ns,
                        name,
                        current=current,
                        mutate=_replacing_with_owners(body),
                    )
                )

    # ----- rollout steps and revision GC ---------------------------------------------------

    def schedule(self) -> None:
        """When a pass is due by the passing of time alone: the next rollout step
        (``next_rollout_step``) or the next GC deadline (``gc.next_deadline``)."""
        times = (
            next_rollout_step(self.state, self.now),
            next_deadline(self.state, self.configs.gc, self.now),
        )
        due = [t for t in times if t is not None]
        self.next_due = min(due) if due else None

    def collect(self) -> None:
        """Revisions the shared GC collects (``zeroserve.serving.gc.collectable`` under
        ``config-gc``; never one a route serves): their Revision objects are deleted, and
        their Deployments and Services go with them (owner references)."""
        found = set(collectable(self.state, self.configs.gc, self.now))
        protected = referenced(self.state)
        for key in sorted(found - protected):
            if key in self.view.revisions:
                self.collected.add(key)
                record = self.state.revisions.pop(key, None)
                cfg = self.state.configurations.get(
                    (key.namespace, record.configuration if record else "")
                )
                if cfg is not None and key.name in cfg.revisions:
                    cfg.revisions.remove(key.name)
                self.add(Write("delete", REVISIONS, key.namespace, key.name))

    def service_writes(self) -> None:
        domain = self.settings.cluster_domain
        for key, svc in sorted(self.state.services.items()):
            if key in self.pending:
                continue
            obj, _ = self.valid_services[key]
            self.add(
                status_patch(
                    KSERVICES, obj, service_status(self.state, key, svc, cluster_domain=domain)
                )
            )


def _replacing_with_owners(body: Obj) -> Callable[[Obj], Obj | None]:
    """An update to ``body``'s spec, labels, annotations and owner references."""
    m = body["metadata"]
    base = replacing({"spec": body["spec"]}, m.get("labels"), m.get("annotations"))

    def mutate(current: Obj) -> Obj | None:
        new = base(current) or copy.deepcopy(current)
        new["metadata"]["ownerReferences"] = copy.deepcopy(m["ownerReferences"])
        return None if new == current else new

    return mutate


def run(
    view: ClusterView,
    configs: Configs,
    image: str,
    settings: Settings,
    now: float,
    gateways: IstioGateways | None = None,
) -> Planner:
    """One pass: the planner with its writes and when the next pass is due."""
    p = Planner(view, configs, image, settings, now, gateways)
    p.services()
    p.configurations()
    p.routes()
    reconcile(p.state, now)
    p.collect()
    p.mark_invalid()
    p.revision_writes()
    p.configuration_writes()
    p.route_writes()
    p.service_writes()
    p.domain_mapping_writes()
    p.network_policy_writes()
    p.schedule()
    return p


def plan(
    view: ClusterView,
    configs: Configs,
    image: str,
    settings: Settings,
    now: float,
    gateways: IstioGateways | None = None,
) -> list[Write]:
    """The writes that bring the cluster to the state the objects in ``view`` ask for."""
    return run(view, configs, image, settings, now, gateways).writes
