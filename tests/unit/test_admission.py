"""Admission control: at most ``max_active`` Controller calls at once, and half of that
on any one search, so that a busy search cannot take every thread from the others."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest

from controller_service.searches import Searches
from controller_service.servicer import Busy, ControllerServicer
from controller_service.store import Store


def test_one_search_gets_half_and_the_others_the_rest(tmp_path: Path) -> None:
    servicer = ControllerServicer(Searches(Store(tmp_path / "c.db")), max_active=4)
    with ExitStack() as held:
        for _ in range(2):
            held.enter_context(servicer.admit("busy"))
        with pytest.raises(Busy, match="search busy has 2 calls in progress"):
            held.enter_context(servicer.admit("busy"))
        held.enter_context(servicer.admit("other"))  # other searches still get in
        held.enter_context(servicer.admit(""))  # and calls without a search
        with pytest.raises(Busy, match="serving 4 calls already"):
            held.enter_context(servicer.admit("quiet"))
    # everything released: the counts are back to zero
    assert servicer._active == 0 and servicer._per_search == {}
    with servicer.admit("busy"), servicer.admit("busy"):
        pass


def test_a_failed_call_releases_its_place(tmp_path: Path) -> None:
    servicer = ControllerServicer(Searches(Store(tmp_path / "c.db")), max_active=4)
    with pytest.raises(RuntimeError), servicer.admit("s"):
        raise RuntimeError("boom")
    assert servicer._active == 0 and servicer._per_search == {}
