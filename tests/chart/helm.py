"""Running helm and kubectl, and reading what they render.

Both binaries are looked up in ``.venv/bin`` first (``make tools`` puts them there), then
on the PATH. Each render is one ``helm template`` process; the objects come back as plain
dicts, in helm's install order.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import yaml

from zeroserve.api.objects import Obj

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "zeroserve"
HERE = Path(__file__).resolve().parent
CUSTOM_VALUES = HERE / "values-custom.yaml"
NAMESPACE = "knative-serving"
RELEASE = "zeroserve"
KUBE_VERSION = "1.31.0"
"""The Kubernetes version helm renders for and the schemas are taken from (the kubectl
from PyPI is 1.31 too)."""


def find_tool(name: str) -> str | None:
    """``.venv/bin/<name>`` if it is there, else the one on the PATH, else None."""
    local = ROOT / ".venv" / "bin" / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)


class ToolError(Exception):
    """helm or kubectl exited non-zero; the message carries its stderr."""


def run(
    tool: str, *args: str, stdin: str | None = None, env: Mapping[str, str] | None = None
) -> str:
    """Run a tool to completion and return its stdout."""
    proc = subprocess.run(
        [tool, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if proc.returncode != 0:
        raise ToolError(
            f"{Path(tool).name} {' '.join(args)}: exit {proc.returncode}\n{proc.stderr.strip()}"
        )
    return proc.stdout


def template_args(
    values: Iterable[Path] = (),
    sets: Sequence[str] = (),
    chart: Path = CHART,
    set_json: Sequence[str] = (),
) -> list[str]:
    args = [
        "template",
        RELEASE,
        str(chart),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
    ]
    for v in values:
        args += ["--values", str(v)]
    for s in sets:
        args += ["--set", s]
    for s in set_json:
        args += ["--set-json", s]
    return args


def render(
    helm: str,
    values: Iterable[Path] = (),
    sets: Sequence[str] = (),
    chart: Path = CHART,
    set_json: Sequence[str] = (),
) -> list[Obj]:
    """Every object ``helm template`` renders, empty documents dropped. ``sets`` are
    ``--set`` (numbers become integers), ``set_json`` are ``--set-json`` (numbers become
    floats, as in a values file)."""
    out = run(helm, *template_args(values, sets, chart, set_json))
    return [doc for doc in yaml.safe_load_all(out) if doc]


def key(obj: Obj) -> tuple[str, str, str]:
    """(kind, namespace, name) of an object."""
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace", ""), meta["name"]


def only(
    objects: Iterable[Obj], kind: str, name: str | None = None, namespace: str | None = None
) -> list[Obj]:
    """The objects of one kind (and name, and namespace, when given)."""
    return [
        o
        for o in objects
        if o["kind"] == kind
        and (name is None or o["metadata"]["name"] == name)
        and (namespace is None or o["metadata"].get("namespace") == namespace)
    ]


def one(objects: Iterable[Obj], kind: str, name: str, namespace: str | None = None) -> Obj:
    found = only(objects, kind, name, namespace)
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def load_yaml_file(path: Path) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
