"""Kubernetes name rules: DNS labels, subdomains, label keys and values, env names.

Each ``check_*`` returns None when the value is fine, else the rule it breaks
with the value, ready to become a ``ManifestError`` rule.
"""

from __future__ import annotations

import hashlib
import re

from zeroserve.api.errors import describe

MAX_LABEL = 63
"""Longest DNS label; every host name part (``{tag}-{name}``) must fit."""
MAX_SUBDOMAIN = 253

_DNS1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
# Kubernetes' (pre-1.32) env var rule: a C identifier that may also use - and .
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")


def check_dns1035_label(value: str, *, max_length: int = MAX_LABEL) -> str | None:
    """Names of Services, Configurations, Routes, Revisions and tags: they become host labels."""
    if len(value) > max_length:
        return f"must be at most {max_length} characters, got {len(value)} ({describe(value)})"
    if not _DNS1035.fullmatch(value):
        return (
            "must be a DNS-1035 label (lower-case letters, digits and '-', starting with "
            f"a letter and ending with a letter or digit), got {describe(value)}"
        )
    return None


def check_dns1123_label(value: str) -> str | None:
    """Namespaces and container names."""
    if len(value) > MAX_LABEL:
        return f"must be at most {MAX_LABEL} characters, got {len(value)} ({describe(value)})"
    if not _DNS1123_LABEL.fullmatch(value):
        return (
            "must be a DNS-1123 label (lower-case letters, digits and '-', starting and "
            f"ending with a letter or digit), got {describe(value)}"
        )
    return None


def check_dns1123_subdomain(value: str) -> str | None:
    """Domain names (``config-domain`` keys) and label-key prefixes."""
    if len(value) > MAX_SUBDOMAIN:
        return f"must be at most {MAX_SUBDOMAIN} characters, got {len(value)}"
    if not _DNS1123_SUBDOMAIN.fullmatch(value) or any(
        len(part) > MAX_LABEL for part in value.split(".")
    ):
        return f"must be a lower-case DNS name like example.com, got {describe(value)}"
    return None


def check_qualified_name(key: str) -> str | None:
    """Label and annotation keys: ``[prefix/]name``, prefix a DNS subdomain, name <= 63."""
    prefix, slash, name = key.rpartition("/")
    bad = (
        f"must be a qualified name ([prefix/]name; name of letters, digits, '-', '_' and "
        f"'.', at most 63 characters), got {describe(key)}"
    )
    if slash and (not prefix or check_dns1123_subdomain(prefix) is not None):
        return bad
    if len(name) > MAX_LABEL or not _QUALIFIED_NAME.fullmatch(name):
        return bad
    return None


def check_label_value(value: str) -> str | None:
    if value and (len(value) > MAX_LABEL or not _QUALIFIED_NAME.fullmatch(value)):
        return (
            f"must be empty or at most 63 letters, digits, '-', '_' and '.', starting and "
            f"ending with a letter or digit, got {describe(value)}"
        )
    return None


def check_env_name(name: str) -> str | None:
    if not _ENV_NAME.fullmatch(name):
        return (
            "must be a valid environment variable name (letters, digits, '_', '-' and '.', "
            f"not starting with a digit), got {describe(name)}"
        )
    return None


def child_name(parent: str, suffix: str) -> str:
    """The name of an object made for ``parent`` (``hello-00001`` + ``-deployment``), kept
    within one DNS label as Knative's ``kmeta.ChildName`` does: when ``parent + suffix``
    is longer than 63 characters, the parent keeps its start, then the MD5 of the whole
    parent name (so two long parents stay apart), then the suffix."""
    name = parent + suffix
    if len(name) <= MAX_LABEL:
        return name
    digest = hashlib.md5(parent.encode(), usedforsecurity=False).hexdigest()
    head = MAX_LABEL - len(suffix) - len(digest)
    if head < 0:
        # A suffix too long to keep whole: hash parent and suffix together instead.
        return (
            parent[: MAX_LABEL - len(digest)]
            + hashlib.md5(name.encode(), usedforsecurity=False).hexdigest()
        )
    return parent[:head] + digest + suffix
