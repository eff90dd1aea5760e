"""The test cluster's kube-controller-manager: the controllers the Kubernetes path needs.

They run in the fake API server's process and read and write its store directly (no HTTP),
reacting to its watch events:

- **Deployment** -> ReplicaSets (``pkg/controller/deployment``): one ReplicaSet per pod
  template, named ``<deployment>-<pod-template-hash>``; ``RollingUpdate`` with
  ``maxSurge``/``maxUnavailable`` (25 % each by default: the surge rounded up, the
  unavailability down, as ``intstr.GetScaledValueFromIntOrPercent``), ``Recreate``; old
  ReplicaSets beyond ``revisionHistoryLimit`` (10) deleted; status with
  ``replicas``/``updatedReplicas``/``readyReplicas``/``availableReplicas`` and the
  ``Available``/``Progressing`` conditions.
- **ReplicaSet** -> Pods (``pkg/controller/replicaset``): pods named
  ``<replicaset>-<5 chars>``, controller ownerReference; extra pods deleted in the order of
  ``ActivePodsWithRanks`` (unscheduled, pending, not ready, newest first).
- **EndpointSlice** (``pkg/controller/endpointslice``): for every Service with a selector,
  one slice ``<service>-<5 chars>`` (label ``kubernetes.io/service-name``, managed-by
  ``endpointslice-controller.k8s.io``) listing the pods with an IP: ``ready`` when the pod
  is Ready and not terminating, ``serving`` when Ready, ``terminating`` when deleted;
  ports from the Service's, named ``targetPort``s resolved against the containers.
- **ServiceAccount** and **root CA publisher**: a ``default`` ServiceAccount and the
  ``kube-root-ca.crt`` ConfigMap in every namespace.
- The **ServiceAccount admission plugin**'s part of pod creation: ``serviceAccountName``
  defaulted, and the ``kube-api-access-<5>`` projected volume (token, ``ca.crt``,
  namespace) mounted at ``/var/run/secrets/kubernetes.io/serviceaccount`` in every
  container, unless ``automountServiceAccountToken`` is false.

What differs from Kubernetes: reconciles run on the next loop turn after a change (no
work queues, rate limits or expectations); ``minReadySeconds`` counts a pod available as
soon as it is ready; no ``progressDeadlineSeconds`` (a stuck rollout stays
``Progressing``); proportional scaling of several live ReplicaSets gives the whole change
to the newest.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import math
import random
import string
from collections.abc import Callable, Iterable
from typing import Any

from tests.fakes.kubeapi.errors import ApiError
from tests.fakes.kubeapi.fakeapi import FakeKubeAPI
from tests.fakes.kubeapi.selection import (
    format_label_selector,
    labels_match,
    parse_label_selector,
)
from tests.fakes.kubeapi.storage import Event, now

log = logging.getLogger(__name__)

POD_TEMPLATE_HASH = "pod-template-hash"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
ROOT_CA = "kube-root-ca.crt"
_SAFE = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand alphanums
_WATCHED = ("deployments.apps", "replicasets.apps", "pods", "services", "namespaces")


def label_selector_predicate(selector: dict[str, Any]) -> Callable[[dict[str, str]], bool]:
    """A LabelSelector object as a predicate over a label map."""
    reqs = parse_label_selector(format_label_selector(selector))
    return lambda labels: labels_match(reqs, {"metadata": {"labels": labels}})


def _fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def pod_template_hash(template: dict[str, Any], collisions: int = 0) -> str:
    """A stable short hash of a pod template (Kubernetes' ``controller.ComputeHash``
    hashes Go's deep print of the template with FNV-32a and encodes the decimal digits
    with the safe alphabet; this hashes the canonical JSON the same way)."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collisions:
        data += str(collisions).encode()
    return "".join(_SAFE[ord(c) % len(_SAFE)] for c in str(_fnv32a(data)))


def scaled(value: Any, total: int, *, round_up: bool) -> int:
    """An ``IntOrString`` of ``total``: an int, or a percentage rounded up or down."""
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        exact = int(text[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(text)


def surge_and_unavailable(deployment: dict[str, Any]) -> tuple[int, int]:
    """``ResolveFenceposts``: both 0 after rounding means 1 unavailable."""
    replicas = int(deployment["spec"].get("replicas", 1))
    rolling = (deployment["spec"].get("strategy") or {}).get("rollingUpdate") or {}
    surge = scaled(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = scaled(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def pod_ready(pod: dict[str, Any]) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def _terminating(obj: dict[str, Any]) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def _owned_by(obj: dict[str, Any], owner: dict[str, Any]) -> bool:
    return any(
        ref.get("uid") == owner["metadata"]["uid"] and ref.get("controller")
        for ref in obj["metadata"].get("ownerReferences") or ()
    )


def _owner_ref(owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _rank(pod: dict[str, Any]) -> tuple[int, int, int, str]:
    """Delete-first order (``ActivePodsWithRanks``, simplified): unscheduled, then not
    running, then not ready, then the newest."""
    status = pod.get("status") or {}
    created = pod["metadata"].get("creationTimestamp") or ""
    inverted = "".join(chr(0x10FFFF - ord(c)) for c in created)
    return (
        0 if not pod["spec"].get("nodeName") else 1,
        0 if status.get("phase") != "Running" else 1,
        0 if not pod_ready(pod) else 1,
        inverted,
    )


def admit_pod(pod: dict[str, Any]) -> dict[str, Any]:
    """The ServiceAccount admission plugin on a new pod (module doc)."""
    spec = pod["spec"]
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec["serviceAccount"] = spec["serviceAccountName"]
    if spec.get("automountServiceAccountToken") is False:
        return pod
    containers = [*spec.get("initContainers", ()), *spec.get("containers", ())]
    if any(m.get("mountPath") == SA_MOUNT for c in containers for m in c.get("volumeMounts") or ()):
        return pod
    name = "kube-api-access-" + "".join(random.choices(string.ascii_lowercase, k=5))
    spec.setdefault("volumes", []).append(
        {
            "name": name,
            "projected": {
                "defaultMode": 0o644,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {
                        "configMap": {
                            "name": ROOT_CA,
                            "items": [{"key": "ca.crt", "path": "ca.crt"}],
                        }
                    },
                    {
                        "downwardAPI": {
                            "items": [
                                {
                                    "path": "namespace",
                                    "fieldRef": {
                                        "apiVersion": "v1",
                                        "fieldPath": "metadata.namespace",
                                    },
                                }
                            ]
                        }
                    },
                ],
            },
        }
    )
    for c in containers:
        c.setdefault("volumeMounts", []).append(
            {"name": name, "mountPath": SA_MOUNT, "readOnly": True}
        )
    return pod


class ControllerManager:
    """Runs the controllers of the module doc until :meth:`stop`."""

    def __init__(self, api: FakeKubeAPI, *, root_ca_pem: str) -> None:
        self.api = api
        self.root_ca_pem = root_ca_pem
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.errors: list[str] = []
        """Reconcile errors (each logged): a test can assert there were none."""

    async def start(self) -> None:
        self.api.store.add_listener(self._on_event)
        for ns in self.api.list("namespaces"):
            self._dirty.add(ns["metadata"]["name"])
        self._wake.set()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="controllers")

    async def stop(self) -> None:
        self.api.store.remove_listener(self._on_event)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _on_event(self, event: Event) -> None:
        if event.key not in _WATCHED:
            return
        meta = event.obj.get("metadata") or {}
        ns = meta["name"] if event.key == "namespaces" else meta.get("namespace", "")
        if ns:
            self._dirty.add(ns)
            self._wake.set()

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0.02)  # let a burst of writes land first
            dirty, self._dirty = self._dirty, set()
            for ns in sorted(dirty):
                try:
                    self.reconcile(ns)
                except Exception as e:  # a controller keeps going
                    self.errors.append(f"{ns}: {e!r}")
                    log.exception("reconciling namespace %s", ns)
                    self._dirty.add(ns)
                    await asyncio.sleep(0.2)
                    self._wake.set()

    # ----- one pass over a namespace -------------------------------------------------------

    def reconcile(self, ns: str) -> None:
        namespace = self.api.get("namespaces", None, ns)
        if namespace is None or _terminating(namespace):
            return
        self._namespace_defaults(ns)
        for deployment in self.api.list("deployments", ns):
            if not _terminating(deployment):
                self._deployment(deployment)
        for rs in self.api.list("replicasets", ns):
            if not _terminating(rs):
                self._replicaset(rs)
        for service in self.api.list("services", ns):
            self._service(service)

    def _namespace_defaults(self, ns: str) -> None:
        if self.api.get("serviceaccounts", ns, "default") is None:
            self._create("serviceaccounts", ns, {"metadata": {"name": "default"}})
        cm = self.api.get("configmaps", ns, ROOT_CA)
        if cm is None or (cm.get("data") or {}).get("ca.crt") != self.root_ca_pem:
            self.api.put(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": ROOT_CA, "namespace": ns},
                    "data": {"ca.crt": self.root_ca_pem},
                }
            )

    def _create(self, resource: str, ns: str, body: dict[str, Any]) -> dict[str, Any] | None:
        rt = self.api.resource(resource)
        try:
            return self.api.store.create(rt, ns, body)
        except ApiError as e:
            if e.code == 409:
                return None
            raise

    def _update_status(self, resource: str, obj: dict[str, Any], status: dict[str, Any]) -> None:
        if obj.get("status") != status:
            current = self.api.get(
                resource, obj["metadata"].get("namespace"), obj["metadata"]["name"]
            )
            if current is not None:
                current["status"] = status
                self.api.put(current)

    # ----- Deployments -----------------------------------------------------------------------

    def _deployment(self, d: dict[str, Any]) -> None:
        ns = d["metadata"]["namespace"]
        owned = [rs for rs in self.api.list("replicasets", ns) if _owned_by(rs, d)]
        template = d["spec"]["template"]
        h = pod_template_hash(template, int((d.get("status") or {}).get("collisionCount") or 0))
        new = next(
            (rs for rs in owned if rs["metadata"].get("labels", {}).get(POD_TEMPLATE_HASH) == h),
            None,
        )
        if new is None:
            new = self._new_replicaset(d, h)
            if new is None:
                return
            owned.append(new)
        old = [rs for rs in owned if rs["metadata"]["uid"] != new["metadata"]["uid"]]
        replicas = int(d["spec"].get("replicas", 1))
        strategy = (d["spec"].get("strategy") or {}).get("type") or "RollingUpdate"
        if d["spec"].get("paused"):
            pass
        elif strategy == "Recreate":
            live_old = [rs for rs in old if _spec_replicas(rs) > 0 or _status(rs, "replicas") > 0]
            for rs in live_old:
                self._scale_rs(rs, 0)
            if not live_old:
                self._scale_rs(new, replicas)
        else:
            self._rolling(d, new, old, replicas)
        self._cleanup(d, old)
        self._deployment_status(d, new, owned)

    def _new_replicaset(self, d: dict[str, Any], h: str) -> dict[str, Any] | None:
        template = copy.deepcopy(d["spec"]["template"])
        template.setdefault("metadata", {}).setdefault("labels", {})[POD_TEMPLATE_HASH] = h
        selector = copy.deepcopy(d["spec"]["selector"])
        selector.setdefault("matchLabels", {})[POD_TEMPLATE_HASH] = h
        annotations = {
            "deployment.kubernetes.io/desired-replicas": str(d["spec"].get("replicas", 1)),
            "deployment.kubernetes.io/revision": str(self._next_revision(d)),
        }
        body = {
            "metadata": {
                "name": f"{d['metadata']['name']}-{h}",
                "labels": dict(template["metadata"]["labels"]),
                "annotations": annotations,
                "ownerReferences": [_owner_ref(d)],
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": d["spec"].get("minReadySeconds", 0),
                "selector": selector,
                "template": template,
            },
        }
        return self._create("replicasets", d["metadata"]["namespace"], body)

    def _next_revision(self, d: dict[str, Any]) -> int:
        revisions = [
            int(rs["metadata"].get("annotations", {}).get("deployment.kubernetes.io/revision", 0))
            for rs in self.api.list("replicasets", d["metadata"]["namespace"])
            if _owned_by(rs, d)
        ]
        return max(revisions, default=0) + 1

    def _scale_rs(self, rs: dict[str, Any], replicas: int) -> None:
        if _spec_replicas(rs) != replicas:
            current = self.api.get(
                "replicasets", rs["metadata"]["namespace"], rs["metadata"]["name"]
            )
            if current is not None:
                current["spec"]["replicas"] = replicas
                self.api.put(current)
                rs["spec"]["replicas"] = replicas

    def _rolling(
        self, d: dict[str, Any], new: dict[str, Any], old: list[dict[str, Any]], replicas: int
    ) -> None:
        surge, max_unavailable = surge_and_unavailable(d)
        if not any(_spec_replicas(rs) for rs in old):
            self._scale_rs(new, replicas)  # no rollout under way: a plain scale
            return
        # scale the new ReplicaSet up within the surge (NewRSNewReplicas)
        total = sum(_spec_replicas(rs) for rs in [new, *old])
        room = replicas + surge - total
        if room > 0 and _spec_replicas(new) < replicas:
            self._scale_rs(new, _spec_replicas(new) + min(room, replicas - _spec_replicas(new)))
        elif _spec_replicas(new) > replicas:
            self._scale_rs(new, replicas)
        # scale the old ones down as far as availability allows (reconcileOldReplicaSets)
        all_pods = sum(_spec_replicas(rs) for rs in [new, *old])
        min_available = replicas - max_unavailable
        new_unavailable = _spec_replicas(new) - _status(new, "availableReplicas")
        budget = all_pods - min_available - new_unavailable
        if budget <= 0:
            return
        for rs in sorted(old, key=lambda r: r["metadata"].get("creationTimestamp") or ""):
            # unhealthy old pods first: they count for nothing
            unhealthy = _spec_replicas(rs) - _status(rs, "availableReplicas")
            cut = min(max(unhealthy, 0), budget)
            if cut:
                self._scale_rs(rs, _spec_replicas(rs) - cut)
                budget -= cut
        available = sum(_status(rs, "availableReplicas") for rs in [new, *old])
        budget = available - min_available
        for rs in sorted(old, key=lambda r: r["metadata"].get("creationTimestamp") or ""):
            if budget <= 0:
                break
            cut = min(_spec_replicas(rs), budget)
            if cut:
                self._scale_rs(rs, _spec_replicas(rs) - cut)
                budget -= cut

    def _cleanup(self, d: dict[str, Any], old: list[dict[str, Any]]) -> None:
        limit = int(d["spec"].get("revisionHistoryLimit", 10))
        idle = [
            rs
            for rs in old
            if _spec_replicas(rs) == 0 and _status(rs, "replicas") == 0 and not _terminating(rs)
        ]
        idle.sort(key=lambda r: r["metadata"].get("creationTimestamp") or "")
        for rs in idle[: max(len(idle) - limit, 0)]:
            self.api.delete("replicasets", rs["metadata"]["namespace"], rs["metadata"]["name"])

    def _deployment_status(
        self, d: dict[str, Any], new: dict[str, Any], owned: Iterable[dict[str, Any]]
    ) -> None:
        owned = list(owned)
        replicas = int(d["spec"].get("replicas", 1))
        _, max_unavailable = surge_and_unavailable(d)
        total = sum(_status(rs, "replicas") for rs in owned)
        ready = sum(_status(rs, "readyReplicas") for rs in owned)
        available = sum(_status(rs, "availableReplicas") for rs in owned)
        updated = _status(new, "replicas")
        old_status = d.get("status") or {}
        is_available = available >= replicas - max_unavailable
        complete = updated == replicas and total == replicas and available >= replicas
        stamp = now()
        conditions = [
            _condition(
                old_status,
                "Available",
                is_available,
                "MinimumReplicasAvailable" if is_available else "MinimumReplicasUnavailable",
                "Deployment has minimum availability."
                if is_available
                else "Deployment does not have minimum availability.",
                stamp,
            ),
            _condition(
                old_status,
                "Progressing",
                True,
                "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                f'ReplicaSet "{new["metadata"]["name"]}" has successfully progressed.'
                if complete
                else f'ReplicaSet "{new["metadata"]["name"]}" is progressing.',
                stamp,
            ),
        ]
        status: dict[str, Any] = {
            "observedGeneration": d["metadata"].get("generation", 1),
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "conditions": conditions,
        }
        if total - available > 0:
            status["unavailableReplicas"] = total - available
        failed = next(
            (
                c
                for c in (new.get("status") or {}).get("conditions") or ()
                if c.get("type") == "ReplicaFailure"
            ),
            None,
        )
        if failed is not None:  # the new ReplicaSet's failure, as the Deployment's (sync.go)
            conditions.append(
                _condition(
                    old_status,
                    "ReplicaFailure",
                    failed.get("status") == "True",
                    failed.get("reason", ""),
                    failed.get("message", ""),
                    stamp,
                )
            )
        if "collisionCount" in old_status:
            status["collisionCount"] = old_status["collisionCount"]
        for key in ("readyReplicas", "availableReplicas", "updatedReplicas", "replicas"):
            if not status[key]:
                del status[key]
        self._update_status("deployments", d, status)

    # ----- ReplicaSets -----------------------------------------------------------------------

    def _replicaset(self, rs: dict[str, Any]) -> None:
        ns = rs["metadata"]["namespace"]
        matches = label_selector_predicate(rs["spec"]["selector"])
        pods = [
            p
            for p in self.api.list("pods", ns)
            if _owned_by(p, rs) and matches(p["metadata"].get("labels") or {})
        ]
        active = [
            p
            for p in pods
            if not _terminating(p)
            and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]
        want = _spec_replicas(rs)
        refused: ApiError | None = None
        if len(active) < want:
            for _ in range(want - len(active)):
                try:
                    self._create_pod(rs)
                except ApiError as e:  # e.g. Pod Security admission: said in the status
                    refused = e
                    break
        elif len(active) > want:
            for pod in sorted(active, key=_rank)[: len(active) - want]:
                self.api.delete("pods", ns, pod["metadata"]["name"])
                active.remove(pod)
        ready = [p for p in active if pod_ready(p)]
        status = {
            "observedGeneration": rs["metadata"].get("generation", 1),
            "replicas": len(active),
            "fullyLabeledReplicas": len(active),
            "readyReplicas": len(ready),
            "availableReplicas": len(ready),
        }
        for key in ("readyReplicas", "availableReplicas", "fullyLabeledReplicas"):
            if not status[key]:
                del status[key]
        if refused is not None:
            # ReplicaFailure/FailedCreate with the apiserver's message, kept while creates
            # fail and dropped once one works (replica_set_utils.go calculateStatus)
            old_status = rs.get("status") or {}
            failure = _condition(
                old_status, "ReplicaFailure", True, "FailedCreate", str(refused), now()
            )
            failure.pop("lastUpdateTime", None)
            status["conditions"] = [failure]
        self._update_status("replicasets", rs, status)

    def _create_pod(self, rs: dict[str, Any]) -> None:
        template = copy.deepcopy(rs["spec"]["template"])
        meta = template.get("metadata") or {}
        pod = {
            "metadata": {
                "generateName": f"{rs['metadata']['name']}-",
                "labels": meta.get("labels") or {},
                "annotations": meta.get("annotations") or {},
                "ownerReferences": [_owner_ref(rs)],
            },
            "spec": template["spec"],
        }
        pod["spec"].setdefault("restartPolicy", "Always")
        pod["spec"].setdefault("terminationGracePeriodSeconds", 30)
        pod["spec"].setdefault("dnsPolicy", "ClusterFirst")
        pod["status"] = {"phase": "Pending"}
        self._create("pods", rs["metadata"]["namespace"], admit_pod(pod))

    # ----- EndpointSlices ----------------------------------------------------------------------

    def _service(self, svc: dict[str, Any]) -> None:
        spec = svc.get("spec") or {}
        selector = spec.get("selector")
        if not selector or spec.get("type") == "ExternalName" or _terminating(svc):
            return
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        slices = self.api.list("endpointslices", ns, label_selector=f"{SERVICE_NAME_LABEL}={name}")
        slices = [
            s
            for s in slices
            if (s["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY
        ]
        matches = label_selector_predicate({"matchLabels": selector})
        pods = [
            p
            for p in self.api.list("pods", ns)
            if matches(p["metadata"].get("labels") or {}) and (p.get("status") or {}).get("podIP")
        ]
        pods.sort(key=lambda p: p["metadata"]["name"])
        endpoints = []
        for p in pods:
            serving = pod_ready(p)
            terminating = _terminating(p)
            endpoints.append(
                {
                    "addresses": [p["status"]["podIP"]],
                    "conditions": {
                        "ready": serving and not terminating,
                        "serving": serving,
                        "terminating": terminating,
                    },
                    "nodeName": p["spec"].get("nodeName", ""),
                    "targetRef": {
                        "kind": "Pod",
                        "namespace": ns,
                        "name": p["metadata"]["name"],
                        "uid": p["metadata"]["uid"],
                    },
                }
            )
        ports = [_slice_port(port, pods) for port in spec.get("ports") or ()]
        labels = {
            **(svc["metadata"].get("labels") or {}),
            SERVICE_NAME_LABEL: name,
            MANAGED_BY_LABEL: MANAGED_BY,
        }
        body = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": ports,
        }
        if not slices:
            body["metadata"] = {
                "generateName": f"{name}-",
                "labels": labels,
                "ownerReferences": [_owner_ref(svc)],
            }
            self._create("endpointslices", ns, body)
            return
        first, extra = slices[0], slices[1:]
        for s in extra:
            self.api.delete("endpointslices", ns, s["metadata"]["name"])
        if (
            first.get("endpoints") != endpoints
            or first.get("ports") != ports
            or first["metadata"].get("labels") != labels
        ):
            first.update({k: v for k, v in body.items() if k not in ("apiVersion", "kind")})
            first["metadata"]["labels"] = labels
            self.api.put(first)


def _slice_port(port: dict[str, Any], pods: list[dict[str, Any]]) -> dict[str, Any]:
    target = port.get("targetPort", port.get("port"))
    number: int | None = target if isinstance(target, int) else None
    if isinstance(target, str):
        if target.isdigit():
            number = int(target)
        else:
            for p in pods:
                for c in p["spec"].get("containers") or ():
                    for cp in c.get("ports") or ():
                        if cp.get("name") == target:
                            number = int(cp["containerPort"])
    out: dict[str, Any] = {"name": port.get("name", ""), "protocol": port.get("protocol", "TCP")}
    if number is not None:
        out["port"] = number
    if port.get("appProtocol"):
        out["appProtocol"] = port["appProtocol"]
    return out


def _spec_replicas(obj: dict[str, Any]) -> int:
    return int(obj["spec"].get("replicas", 1))


def _status(obj: dict[str, Any], key: str) -> int:
    return int((obj.get("status") or {}).get(key) or 0)


def _condition(
    old_status: dict[str, Any], kind: str, ok: bool, reason: str, message: str, stamp: str
) -> dict[str, Any]:
    status = "True" if ok else "False"
    before = next((c for c in old_status.get("conditions") or () if c.get("type") == kind), None)
    if before is not None and before.get("status") == status and before.get("reason") == reason:
        return before
    changed = before is None or before.get("status") != status
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp if changed else before.get("lastTransitionTime", stamp),
    }
