"""Replica starts under way (zeroserve/local/starts.py): what waits until none is."""

from __future__ import annotations

import pytest

from zeroserve.local.starts import StartsUnderWay


def test_a_callback_runs_at_once_when_no_replica_is_starting() -> None:
    starts, called = StartsUnderWay(), []
    starts.when_quiet(lambda: called.append("now"))
    assert called == ["now"] and starts.quiet


def test_a_callback_waits_until_the_last_start_ended() -> None:
    starts, called = StartsUnderWay(), []
    starts.begin()
    starts.begin()
    starts.when_quiet(lambda: called.append("a"))
    starts.when_quiet(lambda: called.append("b"))
    starts.end()
    assert called == [] and not starts.quiet  # one is still starting
    starts.end()
    assert called == ["a", "b"] and starts.quiet
    # each runs once
    starts.begin()
    starts.end()
    assert called == ["a", "b"]


def test_an_end_without_a_begin_is_a_bug() -> None:
    with pytest.raises(RuntimeError, match="never began"):
        StartsUnderWay().end()
