"""The mistakes a first manifest makes, each told at once and precisely: a file with no
object in it, annotation and label keys written outside ``annotations``/``labels``, and a
settings ConfigMap with several bad keys and values (all of them in one answer)."""

from __future__ import annotations

import pytest

from tests.api.manifests import AUTOSCALED, HELLO_V2, doc, dump, edit
from zeroserve.api import Configs, ManifestErrors, load, validate_objects
from zeroserve.serving.controller import Controller

SVC = "svc.yaml: Service default/autoscale-go"


def errors_of(text: str, file: str = "svc.yaml") -> list[str]:
    with pytest.raises(ManifestErrors) as info:
        load(text, file)
    return [str(e) for e in info.value.errors]


# -- no objects ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("\n\n", id="blank-lines"),
        pytest.param("# just a comment\n", id="comment"),
        pytest.param("---\n---\n", id="separators"),
        pytest.param("# a\n---\n# b\n---\n", id="comments-and-separators"),
        pytest.param("null\n", id="null-document"),
    ],
)
def test_a_manifest_without_objects_is_an_error_naming_the_file(text: str) -> None:
    assert errors_of(text, "empty.yaml") == [
        "empty.yaml: no objects in the manifest (it is empty, or only comments and '---')"
    ]


def test_a_file_with_objects_after_empty_documents_still_loads() -> None:
    assert [o.meta.name for o in load("---\n# first\n---\n" + AUTOSCALED, "svc.yaml")] == [
        "autoscale-go"
    ]


def test_a_syntax_error_is_reported_as_such_not_as_no_objects() -> None:
    [error] = errors_of("a: [1, 2\n", "bad.yaml")
    assert error.startswith("bad.yaml:") and "invalid YAML" in error


# -- keys that belong under annotations or labels ---------------------------------------

TARGET = "autoscaling.knative.dev/target"


@pytest.mark.parametrize(
    ("path", "where", "expected"),
    [
        pytest.param(
            ("spec", "template", "metadata", TARGET),
            "spec.template.metadata",
            "spec.template.metadata.annotations",
            id="template-metadata",
        ),
        pytest.param(
            ("spec", "template", TARGET),
            "spec.template",
            "spec.template.metadata.annotations",
            id="template",
        ),
        pytest.param(("spec", TARGET), "spec", "spec.template.metadata.annotations", id="spec"),
        pytest.param(("metadata", TARGET), "metadata", "metadata.annotations", id="metadata"),
        pytest.param((TARGET,), "", "metadata.annotations", id="top-level"),
    ],
)
def test_an_annotation_key_out_of_place_says_where_it_belongs(
    path: tuple[str, ...], where: str, expected: str
) -> None:
    document = edit(doc(AUTOSCALED), path, "10")
    prefix = f"{SVC}: {where}: " if where else f"{SVC}: "
    assert errors_of(dump(document)) == [
        f'{prefix}unknown field "{TARGET}": did you mean {expected}?'
    ]


def test_every_misplaced_key_of_a_document_is_reported() -> None:
    document = doc(AUTOSCALED)
    del document["spec"]["template"]["metadata"]["annotations"]
    for key, value in {TARGET: "10", "autoscaling.knative.dev/min-scale": "1"}.items():
        document = edit(document, ("spec", "template", "metadata", key), value)
    assert errors_of(dump(document)) == [
        f'{SVC}: spec.template.metadata: unknown field "{key}": '
        "did you mean spec.template.metadata.annotations?"
        for key in (TARGET, "autoscaling.knative.dev/min-scale")
    ]


def test_the_visibility_label_points_to_the_objects_own_labels() -> None:
    key = "networking.knative.dev/visibility"
    for path in (("metadata", key), ("spec", "template", "metadata", key)):
        [error] = errors_of(dump(edit(doc(AUTOSCALED), path, "cluster-local")))
        assert error.endswith(f'unknown field "{key}": did you mean metadata.labels?'), error


def test_in_a_route_or_a_traffic_target_the_objects_metadata_is_meant() -> None:
    route = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Route",
        "metadata": {"name": "r"},
        "spec": {"traffic": [{"revisionName": "a", "percent": 100, "example.com/note": "x"}]},
    }
    route = edit(route, ("spec", "example.com/owner"), "me")
    assert errors_of(dump(route), "r.yaml") == [
        'r.yaml: Route default/r: spec.traffic[0]: unknown field "example.com/note": '
        "did you mean metadata.annotations?",
        'r.yaml: Route default/r: spec: unknown field "example.com/owner": '
        "did you mean metadata.annotations?",
    ]


def test_a_plain_typo_is_still_a_plain_unknown_field() -> None:
    document = edit(doc(HELLO_V2), ("spec", "template", "metadata", "annotation"), {"a": "b"})
    [error] = errors_of(dump(document), "v2.yaml")
    assert error.endswith(
        "spec.template.metadata.annotation: unknown field (did you mean 'annotations'?)"
    ), error


# -- a settings ConfigMap: every problem at once -----------------------------------------

BAD_AUTOSCALER = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: config-autoscaler, namespace: knative-serving}
data:
  container-concurrency-target-default: "ten"
  stable-window: "forever"
  scale-to-zero-grace-periodd: "30s"
  enable-scale-to-zero: "maybe"
  max-scale: "3"
"""
CM = "cm.yaml: ConfigMap knative-serving/config-autoscaler"


def test_every_bad_key_and_value_of_a_config_map_is_reported_at_once() -> None:
    _, errors = validate_objects(load(BAD_AUTOSCALER, "cm.yaml"), Configs())
    assert sorted(str(e) for e in errors) == sorted(
        [
            f"{CM}: data.scale-to-zero-grace-periodd: unknown key",
            f"{CM}: data.container-concurrency-target-default: must be a number, got 'ten'",
            f"{CM}: data.enable-scale-to-zero: must be true or false, got 'maybe'",
            f"{CM}: data.stable-window: must be between 6s and 1h in whole seconds, got 'forever'",
        ]
    )


def test_every_unknown_key_of_config_defaults_is_reported_with_its_bad_values() -> None:
    text = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: config-defaults, namespace: knative-serving}
data: {bogus: "1", other: "2", revision-timeout-seconds: "x", container-concurrency: "-3"}
"""
    _, errors = validate_objects(load(text, "d.yaml"), Configs())
    paths = sorted(str(e).split(": ")[2] for e in errors)
    assert paths == [
        "data.bogus",
        "data.container-concurrency",
        "data.other",
        "data.revision-timeout-seconds",
    ]


def test_a_config_map_with_problems_applies_nothing() -> None:
    c = Controller(0.0)
    before = c.configs
    with pytest.raises(ManifestErrors) as info:
        c.apply(load(BAD_AUTOSCALER, "cm.yaml"), now=1.0)
    assert len(info.value.errors) == 4
    assert c.configs == before and c.get("cm") == []
