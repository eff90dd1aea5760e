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


def test_a_start_is_alone_when_no_other_was_under_way_from_its_begin_to_its_end() -> None:
    starts = StartsUnderWay()
    starts.begin()
    mark = starts.alone_since()
    assert starts.still_alone(mark)
    starts.begin()  # another began meanwhile
    assert starts.alone_since() is None  # that one was not alone at its begin
    starts.end()
    assert not starts.still_alone(mark)
    starts.end()
    starts.begin()  # one after the other: each alone
    assert starts.still_alone(starts.alone_since())
    assert not starts.still_alone(None)
