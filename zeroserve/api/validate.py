"""Rules a parsed manifest must follow, as upstream's admission webhook checks them.

Separate from parsing because they depend on the cluster's settings
(``config-defaults`` bounds containerConcurrency and timeoutSeconds;
``config-autoscaler`` bounds the scale annotations): :func:`validate_objects`
lets ConfigMaps in the same batch take effect for the other objects in it.

The pod spec's rules (config-features, containers, volumes) are in
:mod:`zeroserve.api.podspec`. Where zeroserve is stricter than upstream, it is
to avoid a setting that would silently do nothing here: unknown
``autoscaling.knative.dev/`` keys, autoscaling annotations on the Service
instead of its template, classes other than the KPA, and (locally) a
container without ``command`` and volumes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from zeroserve.api.configs import LOCAL_DOMAIN, Configs
from zeroserve.api.errors import ManifestError, describe
from zeroserve.api.fields import Problems
from zeroserve.api.names import (
    MAX_LABEL,
    check_dns1035_label,
    check_dns1123_label,
    check_dns1123_subdomain,
    check_label_value,
    check_qualified_name,
)
from zeroserve.api.objects import (
    ConfigMapObject,
    Configuration,
    DomainMapping,
    Object,
    ObjectMeta,
    RevisionTemplate,
    Route,
    SecretObject,
    Service,
    TrafficTarget,
)
from zeroserve.api.podspec import validate_pod_spec
from zeroserve.api.template import NOT_IN_KNATIVE
from zeroserve.autoscaling import annotations as autoscaling
from zeroserve.autoscaling.annotations import RevisionAutoscaling
from zeroserve.autoscaling.config import KPA_CLASS
from zeroserve.configmap import parse_duration_nanos
from zeroserve.envconfig import ConfigError

CLUSTER_DOMAIN = "cluster.local"
"""The cluster's DNS domain (Kubernetes' default; a DomainMapping may not end in it)."""
GENERATED_SUFFIX_LENGTH = 5
"""Characters the server appends to ``generateName``."""
VISIBILITY_LABEL = "networking.knative.dev/visibility"
CLUSTER_LOCAL = "cluster-local"
_AUTOSCALING_PREFIX = "autoscaling.knative.dev/"
_AUTOSCALING_KEYS = frozenset(
    key
    for keys in (
        autoscaling.CLASS,
        autoscaling.METRIC,
        autoscaling.TARGET,
        autoscaling.TARGET_UTILIZATION,
        autoscaling.TARGET_BURST_CAPACITY,
        autoscaling.WINDOW,
        autoscaling.PANIC_WINDOW_PERCENTAGE,
        autoscaling.PANIC_THRESHOLD_PERCENTAGE,
        autoscaling.MIN_SCALE,
        autoscaling.MAX_SCALE,
        autoscaling.INITIAL_SCALE,
        autoscaling.ACTIVATION_SCALE,
        autoscaling.SCALE_DOWN_DELAY,
        autoscaling.SCALE_TO_ZERO_POD_RETENTION,
        autoscaling.METRIC_AGGREGATION_ALGORITHM,
    )
    for key in keys
)
ROLLOUT_DURATION = "serving.knative.dev/rollout-duration"
"""On a Service or Route: the seconds a new revision takes to get all its traffic."""
NO_GC = "serving.knative.dev/no-gc"
"""On a revision (set through its template's annotations): never garbage-collect it."""
_UNSUPPORTED_ANNOTATIONS: dict[str, str] = {}


def validate(
    obj: Object, configs: Configs, *, local: bool = True, sandbox: bool = False
) -> list[ManifestError]:
    """Every rule ``obj`` breaks under ``configs``. ``local`` adds the rules of running
    without a cluster (a ``command`` is required because images are not pulled);
    ``sandbox``: locally, in pod sandboxes, which can mount volumes."""
    problems: Problems = []
    if isinstance(obj, ConfigMapObject | SecretObject):
        _data_object(obj, configs, problems)
    elif isinstance(obj, DomainMapping):
        _domain_mapping(obj, problems)
    else:
        parent = isinstance(obj, Service | Configuration)
        _metadata(obj.meta, problems, parent=parent)
        if isinstance(obj, Service | Configuration):
            _template(obj.template, obj.meta, configs, problems, local=local, sandbox=sandbox)
            if ROLLOUT_DURATION in obj.template.annotations:
                problems.append(
                    (
                        f"spec.template.metadata.annotations.{ROLLOUT_DURATION}",
                        "belongs in the Service's or Route's metadata.annotations (it would "
                        "have no effect here)",
                    )
                )
        if isinstance(obj, Service | Route):
            _traffic(obj.traffic, obj.meta.name, problems, in_service=isinstance(obj, Service))
            _rollout_duration(obj.meta.annotations, problems)
    return [ManifestError(obj.source, obj.label, path, rule) for path, rule in problems]


def validate_objects(
    objects: Sequence[Object],
    configs: Configs,
    *,
    local: bool = True,
    default_domain: str | None = None,
    sandbox: bool = False,
) -> tuple[Configs, list[ManifestError]]:
    """Validate a batch: its ConfigMaps first, then every other object against the
    settings those ConfigMaps make. Returns the resulting settings and all errors.
    ``default_domain`` is the domain when ``config-domain`` names none (``localhost``)."""
    errors: list[ManifestError] = []
    for obj in objects:
        if isinstance(obj, ConfigMapObject) and obj.is_setting:
            found = validate(obj, configs, local=local)
            errors.extend(found)
            if not found:
                configs = configs.with_config_map(
                    obj.meta.name, obj.data, default_domain=default_domain or LOCAL_DOMAIN
                )
    for obj in objects:
        if not (isinstance(obj, ConfigMapObject) and obj.is_setting):
            errors.extend(validate(obj, configs, local=local, sandbox=sandbox))
    return configs, errors


def _data_object(obj: ConfigMapObject | SecretObject, configs: Configs, problems: Problems) -> None:
    if obj.meta.generate_name and not obj.meta.name:
        problems.append(
            (
                "metadata.name",
                "missing required field (generateName is for Services and Configurations)",
            )
        )
    elif bad := check_dns1123_subdomain(obj.meta.name):
        problems.append(("metadata.name", bad))
    if bad := check_dns1123_label(obj.meta.namespace):
        problems.append(("metadata.namespace", bad))
    _labels(obj.meta.labels, "metadata.labels", problems)
    _annotations(obj.meta.annotations, "metadata.annotations", problems)
    if not (isinstance(obj, ConfigMapObject) and obj.is_setting):
        return
    problems.extend(_setting_problems(obj.meta.name, obj.data, configs))


def _setting_problems(name: str, data: Mapping[str, str], configs: Configs) -> Problems:
    """Every bad key and value of the settings ConfigMap ``name``, as (path, rule).

    The parsers stop at the first problem (``ConfigError``), so the map is parsed
    again without each key found bad until it parses or a problem names no key: a
    user fixes the whole map in one round. A key whose range depends on a bad one
    is then judged against the default of that one, which the message shows.
    """
    found: Problems = []
    data = dict(data)
    while True:
        try:
            configs.with_config_map(name, data)
        except ConfigError as e:
            # Messages read "config-x: key: rule"; the key becomes the field path.
            rest = str(e).removeprefix(f"{name}: ")
            key = next((k for k in data if rest.startswith(f"{k}: ")), None)
            if key is None:
                found.append(("data", rest))
                return found
            found.append((f"data.{key}", rest[len(key) + 2 :]))
            del data[key]
        else:
            return found


def _metadata(meta: ObjectMeta, problems: Problems, *, parent: bool) -> None:
    if meta.name and (bad := check_dns1035_label(meta.name)):
        problems.append(("metadata.name", bad))
    if meta.generate_name and not meta.name:
        if not parent:
            problems.append(
                ("metadata.generateName", "not supported for a Route by zeroserve: give it a name")
            )
        elif bad := _generate_name(meta.generate_name):
            problems.append(("metadata.generateName", bad))
    bad = check_dns1123_label(meta.namespace)
    if bad:
        problems.append(("metadata.namespace", bad))
    _labels(meta.labels, "metadata.labels", problems)
    _annotations(meta.annotations, "metadata.annotations", problems)
    visibility = meta.labels.get(VISIBILITY_LABEL)
    if visibility is not None and visibility != CLUSTER_LOCAL:
        problems.append(
            (
                f"metadata.labels.{VISIBILITY_LABEL}",
                f"must be {CLUSTER_LOCAL}, got {describe(visibility)}",
            )
        )
    if parent:
        for key in meta.annotations:
            if key.startswith(_AUTOSCALING_PREFIX):
                problems.append(
                    (
                        f"metadata.annotations.{key}",
                        "autoscaling annotations belong "
                        "in spec.template.metadata.annotations (they would have no effect here)",
                    )
                )


def rollout_seconds(annotations: Mapping[str, str]) -> int | None:
    """The ``rollout-duration`` annotation in whole seconds; None when absent (validated
    before: a Go duration of whole seconds, >= 0)."""
    text = annotations.get(ROLLOUT_DURATION)
    if not text:
        return None
    return parse_duration_nanos(text) // 1_000_000_000


def _rollout_duration(annotations: Mapping[str, str], problems: Problems) -> None:
    text = annotations.get(ROLLOUT_DURATION)
    if not text:
        return
    path = f"metadata.annotations.{ROLLOUT_DURATION}"
    try:
        nanos = parse_duration_nanos(text)
    except ValueError:
        problems.append((path, f"invalid value: {text} (a duration like 120s or 2m)"))
        return
    if nanos % 1_000_000_000:
        problems.append((path, f"rollout-duration={text} is not at second precision"))
    elif nanos < 0:
        problems.append((path, f"rollout-duration={text} must be positive"))


def _domain_mapping(dm: DomainMapping, problems: Problems) -> None:
    """knative/serving ``pkg/apis/serving/v1beta1/domainmapping_validation.go``."""
    name = dm.meta.name
    if dm.meta.generate_name:
        problems.append(("metadata.generateName", NOT_IN_KNATIVE))
    elif bad := _fqdn(name):
        problems.append(("metadata.name", f"invalid name {name!r}: {bad}"))
    elif name.endswith(f".{CLUSTER_DOMAIN}"):
        problems.append(
            (
                "metadata.name",
                f"invalid name {name!r}: must not be a subdomain of cluster local domain "
                f"{CLUSTER_DOMAIN!r}",
            )
        )
    if bad := check_dns1123_label(dm.meta.namespace):
        problems.append(("metadata.namespace", bad))
    _labels(dm.meta.labels, "metadata.labels", problems)
    _annotations(dm.meta.annotations, "metadata.annotations", problems)
    ref = dm.ref
    if ref.namespace and ref.namespace != dm.meta.namespace:
        problems.append(
            (
                "spec.ref.namespace",
                f"mismatched namespaces: the reference must be in {dm.meta.namespace!r}, "
                f"got {ref.namespace!r}",
            )
        )
    if ref.name and (bad := check_dns1123_label(ref.name)):
        problems.append(("spec.ref.name", bad))


def _fqdn(name: str) -> str | None:
    """Kubernetes' IsFullyQualifiedDomainName: a DNS subdomain with at least two labels."""
    bad = check_dns1123_subdomain(name)
    if bad is None and "." not in name:
        return "should be a domain with at least two segments separated by dots"
    return bad


def _generate_name(prefix: str) -> str | None:
    """A generated name is the prefix and 5 characters: the prefix must start a DNS-1035
    label and leave room for them."""
    limit = MAX_LABEL - GENERATED_SUFFIX_LENGTH
    if len(prefix) > limit:
        return f"must be at most {limit} characters, got {len(prefix)} ({describe(prefix)})"
    if check_dns1035_label(prefix + "x") is not None:
        return (
            "not a DNS 1035 label prefix: lower-case letters, digits and '-', starting with a "
            f"letter, got {describe(prefix)}"
        )
    return None


def _labels(labels: Mapping[str, str], path: str, problems: Problems) -> None:
    for key, value in labels.items():
        bad = check_qualified_name(key) or check_label_value(value)
        if bad:
            problems.append((f"{path}.{key}", bad))


def _annotations(annotations: Mapping[str, str], path: str, problems: Problems) -> None:
    for key in annotations:
        bad = check_qualified_name(key) or _UNSUPPORTED_ANNOTATIONS.get(key)
        if bad:
            problems.append((f"{path}.{key}", bad))


def _template(
    t: RevisionTemplate,
    meta: ObjectMeta,
    configs: Configs,
    problems: Problems,
    *,
    local: bool,
    sandbox: bool = False,
) -> None:
    base = "spec.template"
    owner = meta.name
    if t.name and not owner:
        problems.append(
            (
                f"{base}.metadata.name",
                f"{NOT_IN_KNATIVE} (a revision cannot be named when its parent's name is "
                "generated)",
            )
        )
    elif t.name:
        bad = check_dns1035_label(t.name)
        if bad is None and (not t.name.startswith(f"{owner}-") or len(t.name) <= len(owner) + 1):
            bad = f"must start with {owner + '-'!r} (the configuration's name), got {describe(t.name)}"
        if bad:
            problems.append((f"{base}.metadata.name", bad))
    _labels(t.labels, f"{base}.metadata.labels", problems)
    _annotations(t.annotations, f"{base}.metadata.annotations", problems)

    defaults = configs.defaults
    cc = t.container_concurrency
    if cc is not None:
        low = 0 if defaults.allow_container_concurrency_zero else 1
        if not low <= cc <= defaults.container_concurrency_max_limit:
            problems.append(
                (
                    f"{base}.spec.containerConcurrency",
                    f"must be between {low} and {defaults.container_concurrency_max_limit}"
                    f" (config-defaults container-concurrency-max-limit), got {describe(cc)}",
                )
            )
            cc = None
    _autoscaling(
        t.annotations, configs, problems, cc=defaults.container_concurrency if cc is None else cc
    )

    if (
        t.timeout_seconds is not None
        and not 0 <= t.timeout_seconds <= defaults.max_revision_timeout_seconds
    ):
        problems.append(
            (
                f"{base}.spec.timeoutSeconds",
                f"must be between 0 and {defaults.max_revision_timeout_seconds} (config-defaults "
                f"max-revision-timeout-seconds), got {describe(t.timeout_seconds)}",
            )
        )
    for key, value in (
        ("responseStartTimeoutSeconds", t.response_start_timeout_seconds),
        ("idleTimeoutSeconds", t.idle_timeout_seconds),
    ):
        if value is not None and value < 0:
            problems.append((f"{base}.spec.{key}", f"must be >= 0, got {describe(value)}"))

    validate_pod_spec(t, configs.features, problems, local=local, sandbox=sandbox)


def _autoscaling(
    annotations: Mapping[str, str], configs: Configs, problems: Problems, *, cc: int
) -> None:
    path = "spec.template.metadata.annotations"
    for key in annotations:
        if key.startswith(_AUTOSCALING_PREFIX) and key not in _AUTOSCALING_KEYS:
            problems.append((f"{path}.{key}", "unknown autoscaling annotation"))
    try:
        parsed = RevisionAutoscaling.parse(
            annotations, configs.autoscaler, container_concurrency=cc, deployment=configs.deployment
        )
    except ConfigError as e:
        message = str(e)
        named = next((k for k in annotations if message.startswith(f"{k}: ")), None)
        if named is None:
            problems.append((path, message))
        else:
            problems.append((f"{path}.{named}", message[len(named) + 2 :]))
        return
    if parsed.autoscaler_class != KPA_CLASS:
        key = autoscaling.CLASS[0]
        problems.append(
            (
                f"{path}.{key}" if key in annotations else path,
                f"only {KPA_CLASS} is supported by zeroserve, got {describe(parsed.autoscaler_class)}",
            )
        )


def _traffic(
    traffic: Iterable[TrafficTarget], owner: str, problems: Problems, *, in_service: bool
) -> None:
    targets = list(traffic)
    if in_service and not targets:
        return  # defaulted to 100 % to the latest ready revision
    tags: dict[str, int] = {}
    total, percents_ok = 0, True
    for i, t in enumerate(targets):
        path = f"spec.traffic[{i}]"
        if in_service and t.configuration_name:
            problems.append(
                (
                    f"{path}.configurationName",
                    "not allowed in a Service (its own configuration is implied)",
                )
            )
        elif not in_service and bool(t.revision_name) == bool(t.configuration_name):
            which = "both" if t.revision_name else "neither"
            problems.append(
                (path, f"expected exactly one of revisionName or configurationName, got {which}")
            )
        for key, name in (
            ("revisionName", t.revision_name),
            ("configurationName", t.configuration_name),
        ):
            if name and (bad := check_dns1035_label(name)):
                problems.append((f"{path}.{key}", bad))
        if t.latest_revision is True and t.revision_name:
            problems.append(
                (f"{path}.latestRevision", "must be false (or unset) when revisionName is set")
            )
        elif t.latest_revision is False and not t.revision_name:
            problems.append(
                (f"{path}.latestRevision", "must be true (or unset) when revisionName is not set")
            )
        if t.percent is not None and not 0 <= t.percent <= 100:
            problems.append(
                (f"{path}.percent", f"must be between 0 and 100, got {describe(t.percent)}")
            )
            percents_ok = False
        else:
            total += t.percent or 0
        if t.tag:
            bad = check_dns1035_label(t.tag)
            if bad is None and len(f"{t.tag}-{owner}") > MAX_LABEL:
                bad = (
                    f"{t.tag}-{owner} (the tag's host name label) must be at most {MAX_LABEL} "
                    "characters"
                )
            if bad is None and t.tag in tags:
                bad = f"{t.tag!r} is used twice (also spec.traffic[{tags[t.tag]}].tag)"
            if bad:
                problems.append((f"{path}.tag", bad))
            tags.setdefault(t.tag, i)
    if percents_ok and total != 100:
        problems.append(("spec.traffic", f"percents must add up to 100, got {total}"))
