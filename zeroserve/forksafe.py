"""No garbage collection in a child between fork and exec.

A child forked through ``PyOS_AfterFork_Child`` runs Python before it execs:
``threading``'s after-fork cleanup, then a ``preexec_fn`` if any. uvloop's
``subprocess_exec`` (so ``asyncio.create_subprocess_exec`` in every zeroserve process)
forks that way with automatic garbage collection still on (``subprocess.Popen`` turns
it off around its own fork when given a ``preexec_fn``, uvloop does not). A collection
can then start in the child, and with it the finalizers of whatever garbage the
parent had not collected yet. A finalizer that waits for a thread of the parent waits
forever in the child, where that thread does not exist, and the parent waits forever
for the child's exec. grpcio's asyncio poller is one such finalizer (its thread is
joined in a loop): a ``zeroserve up`` that had made a gRPC probe channel could hang a
replica's start, and the test run did hang once, forking a queue-proxy after the gRPC
probe tests.

:func:`install` turns automatic collection off just before each fork and back on in
the parent just after; the child keeps it off (it is about to exec). Nothing else
changes: the parent collects as before, the child's memory is replaced by exec.
"""

from __future__ import annotations

import gc
import os

_installed = False
_was_enabled = False


def _before_fork() -> None:
    global _was_enabled
    _was_enabled = gc.isenabled()
    gc.disable()


def _after_fork_in_parent() -> None:
    if _was_enabled:
        gc.enable()


def install() -> None:
    """Register the fork hooks once per process (``os.register_at_fork``)."""
    global _installed
    if not _installed:
        os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent)
        _installed = True
