"""Fixtures for the pod sandbox tests: a run state dir of their own, undone afterwards."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from zeroserve.local.sandbox.state import RunState

root_only = pytest.mark.skipif(
    os.geteuid() != 0, reason="namespaces, mounts and cgroups need root (CI runs as root)"
)
TEST_CIDR = "198.19.250.0/24"
"""Inside 198.18.0.0/15, away from the default range a running zeroserve uses."""


@pytest.fixture
async def run_state(tmp_path: Path) -> AsyncIterator[RunState]:
    state = RunState.create(tmp_path / "runs")
    try:
        yield state
    finally:
        await state.undo()


def volume_and_targets(tmp: Path) -> tuple[Path, Path, Path]:
    """A volume directory holding ``key`` = ``value``, and two empty mount targets (one
    to mount read-write, one read-only): the mount tests of enter.py and its helper."""
    volume, rw, ro = tmp / "volume", tmp / "rw", tmp / "ro"
    for d in (volume, rw, ro):
        d.mkdir()
    (volume / "key").write_text("value")
    return volume, rw, ro
