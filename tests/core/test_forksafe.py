"""No garbage collection in a forked child before it execs (zeroserve/forksafe.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Garbage the parent has not collected yet, whose finalizer says which process ran it;
# then a fork whose child allocates with automatic collection due at once (as
# threading's after-fork cleanup does in every child uvloop spawns), then the parent
# collects. (subprocess's own fork with a preexec_fn already keeps the collector off.)
SCRIPT = """
import gc, json, os, sys
from zeroserve import forksafe
if sys.argv[1] == "installed":
    forksafe.install()
gc.collect()
r, w = os.pipe()
class Litter:
    def __del__(self):
        os.write(w, b"%d\\n" % os.getpid())
def drop():
    x = Litter()
    x.me = x  # a cycle: only the collector frees it
drop()
gc.set_threshold(1_000_000)  # the parent does not collect before the fork
pid = os.fork()  # as uvloop's spawn: PyOS_AfterFork_Child, no gc.disable() of its own
if pid == 0:
    gc.set_threshold(1)
    [[] for _ in range(1000)]
    os._exit(0)
os.waitpid(pid, 0)
gc.collect()
os.close(w)
print(json.dumps([str(os.getpid()), os.read(r, 1000).decode().split()]))
"""


def _finalized_by(mode: str) -> tuple[str, list[str]]:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True
    ).stdout
    parent, ran = json.loads(out)  # its pid, and the pids that ran the finalizer
    return parent, ran


@pytest.mark.process
def test_the_child_collects_nothing_and_the_parent_collects_as_before() -> None:
    parent, ran = _finalized_by("installed")
    assert ran == [parent]


@pytest.mark.process
def test_without_it_the_child_runs_the_parents_finalizers() -> None:
    """What it prevents: here the child runs the finalizer (and once more the parent,
    whose copy is still garbage)."""
    parent, ran = _finalized_by("off")
    assert parent in ran and any(pid != parent for pid in ran)
