"""The shared paginators: each follows its API's way of paging and stops with the caller's error when a
position repeats, instead of paging forever."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from connectors.pagination import LoopGuard, anchored_pages, follow_cursor, follow_links


class Repeated(Exception):
    pass


def test_links_are_followed_with_the_first_parameters_only() -> None:
    pages = {"/a": ([1], "/b"), "/b": ([2], "/c"), "/c": ([3], None)}
    asked: list[tuple[str, Mapping[str, Any] | None]] = []

    def fetch(url: str, params: Mapping[str, Any] | None) -> tuple[list[int], str | None]:
        asked.append((url, params))
        return pages[url]

    got = list(follow_links(fetch, "/a", {"per_page": 2}, Repeated))
    assert got == [([1], "/b"), ([2], "/c"), ([3], None)]
    assert asked == [("/a", {"per_page": 2}), ("/b", None), ("/c", None)]


def test_a_link_seen_before_raises_before_its_page_is_handed_out() -> None:
    pages = {"/a": ([1], "/b"), "/b": ([2], "/b")}
    walk = follow_links(lambda url, _p: pages[url], "/a", None, Repeated)
    assert next(walk) == ([1], "/b")
    with pytest.raises(Repeated, match="/b"):
        next(walk)


def test_a_cursor_ends_the_export_or_raises_when_it_repeats() -> None:
    tokens = {None: "x", "x": "y", "y": None}
    assert list(follow_cursor(lambda t: t, lambda page: tokens[page], Repeated)) == [None, "x", "y"]

    looping = {None: "x", "x": "y", "y": "x"}
    walk = follow_cursor(lambda t: t, lambda page: looping[page], Repeated)
    assert [next(walk), next(walk), next(walk)] == [None, "x", "y"]  # handed out, then checked
    with pytest.raises(Repeated, match="x"):
        next(walk)


def test_anchored_pages_restart_from_the_newest_time_and_step_only_within_one_time() -> None:
    rows = {("t0", 1): ["t1", "t2"], ("t2", 1): ["t2", "t2"], ("t2", 2): ["t3"]}
    asked: list[tuple[str, int]] = []

    def fetch(since: str, number: int) -> tuple[list[str], bool]:
        asked.append((since, number))
        return rows[(since, number)], (since, number) != ("t2", 2)

    pages = list(anchored_pages(fetch, "t0", lambda page: page[-1], 10, lambda s, n: Repeated(f"{s} {n}")))
    assert pages == [["t1", "t2"], ["t2", "t2"], ["t3"]]
    assert asked == [("t0", 1), ("t2", 1), ("t2", 2)]


def test_anchored_pages_stop_at_the_page_limit() -> None:
    def fetch(since: str, number: int) -> tuple[list[str], bool]:
        return ["same"], True

    with pytest.raises(Repeated, match="same 3"):
        list(anchored_pages(fetch, "same", lambda page: page[-1], 2, lambda s, n: Repeated(f"{s} {n}")))


def test_the_guard_remembers_every_position() -> None:
    guard: LoopGuard[int] = LoopGuard(lambda p: Repeated(str(p)))
    guard.see(1)
    guard.see(2)
    with pytest.raises(Repeated, match="1"):
        guard.see(1)
