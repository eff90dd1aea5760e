"""Manifests from the Knative docs (helloworld-go, the traffic-splitting tutorial,
autoscaling annotations, config-domain), each with the one local addition zeroserve
needs: a container ``command`` (the image is not pulled locally). ``python`` in a
command is resolved by the local runtime to zeroserve's own interpreter, so these
run in any venv.

Plus small helpers to derive broken variants and to snapshot a controller.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from zeroserve.serving.controller import Controller

HELLOWORLD_GO = """\
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: helloworld-go
  namespace: default
spec:
  template:
    spec:
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
          command: ["python", "examples/helloworld/app.py"]
          env:
            - name: TARGET
              value: "Go Sample v1"
"""

# The traffic-splitting tutorial: first "hello" with TARGET World ...
HELLO_V1 = """\
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
spec:
  template:
    spec:
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
          command: ["python", "examples/helloworld/app.py"]
          ports:
            - containerPort: 8080
          env:
            - name: TARGET
              value: "World"
"""

# ... then a second revision, with 20 % pinned to the first under the tag "current"
# and a "latest" tag that follows the newest ready revision.
HELLO_V2 = """\
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
spec:
  template:
    spec:
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
          command: ["python", "examples/helloworld/app.py"]
          ports:
            - containerPort: 8080
          env:
            - name: TARGET
              value: "Knative"
  traffic:
    - latestRevision: true
      percent: 80
    - revisionName: hello-00001
      percent: 20
      tag: current
    - latestRevision: true
      tag: latest
"""

AUTOSCALED = """\
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: autoscale-go
  namespace: default
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/target: "10"
        autoscaling.knative.dev/min-scale: "1"
        autoscaling.knative.dev/max-scale: "5"
    spec:
      containers:
        - image: ghcr.io/knative/autoscale-go:latest
          command: ["python", "examples/helloworld/app.py"]
"""

CONFIG_DOMAIN_EXAMPLE_COM = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: config-domain
  namespace: knative-serving
data:
  example.com: ""
"""

CONFIG_DOMAIN_SELECTORS = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: config-domain
  namespace: knative-serving
data:
  example.com: ""
  example.org: |
    selector:
      app: nonprofit
  svc.cluster.local: |
    selector:
      app: secret
"""

CONTAINER = ("spec", "template", "spec", "containers", 0)
"""Path of the container in a Service document."""
DELETE = object()
"""Value for :func:`edit` that removes the key."""


def doc(text: str = HELLO_V1) -> dict[str, Any]:
    """A manifest as a mutable dict."""
    value = yaml.safe_load(text)
    assert isinstance(value, dict)
    return value


def edit(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A copy of ``document`` with ``value`` at ``path`` (keys and list indexes), creating
    mappings on the way; ``DELETE`` removes the key."""
    out = copy.deepcopy(document)
    node: Any = out
    for part in path[:-1]:
        if isinstance(node, dict) and part not in node:
            node[part] = {}
        node = node[part]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


def dump(*documents: Any) -> str:
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in documents)


def snapshot(c: Controller) -> tuple[Any, ...]:
    """Everything observable about a controller, to prove an operation changed nothing."""
    views = tuple(repr(c.get(kind)) for kind in ("ksvc", "config", "rev", "route", "cm"))
    return (c.version, views, c.routing_table(), c.revisions(), c.configs)
