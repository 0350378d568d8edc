"""The ways vendor APIs page through lists, each with loop detection, written once.

An API that hands back a position it gave before (a next link, a cursor, an end_time) would page
forever; every paginator here remembers the positions it has been at and raises the caller's own error
(`repeated(position)`) at the first repeat, so each connector keeps its own message.

- `follow_links`: each page names the URL of the next (Zendesk ``links.next`` / ``next_page``,
  Freshdesk's ``Link: <...>; rel="next"`` header);
- `follow_cursor`: each page names the token the next starts from: a cursor (Zendesk's
  ``after_cursor``, HubSpot's ``paging.next.after``) or a time (Zendesk's time-based export
  ``end_time``); the fetch turns the token into the request;
- `anchored_pages`: a list ordered by a change time, asked by ``since`` and a page number (Freshdesk
  tickets): after each page the next request starts again from the newest time seen, page 1, and goes to
  the next page number only while a whole page shares one time;
- `LoopGuard`: the memory itself, for paging shapes of a single vendor (HubSpot's search windows).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
P = TypeVar("P")


class LoopGuard(Generic[K]):
    """The positions a listing has been at; `see` raises `repeated(position)` at a repeat."""

    def __init__(self, repeated: Callable[[K], Exception]) -> None:
        self.repeated = repeated
        self.seen: set[K] = set()

    def see(self, position: K) -> None:
        if position in self.seen:
            raise self.repeated(position)
        self.seen.add(position)


def follow_links(
    fetch: Callable[[str, Mapping[str, Any] | None], tuple[P, str | None]],
    first: str,
    params: Mapping[str, Any] | None,
    repeated: Callable[[str], Exception],
) -> Iterator[tuple[P, str | None]]:
    """Each page with the link to the next (None on the last page).

    `fetch(url, params)` answers the page and its next link; the first request carries `params`, the
    next ones none, as a next link carries every parameter. A repeated link raises before its page is
    handed out, and the link is read at once, so a caller may make other calls between pages.
    """
    guard: LoopGuard[str] = LoopGuard(repeated)
    url: str | None = first
    query = params
    while url:
        page, following = fetch(url, query)
        if following:
            guard.see(following)
        yield page, following
        url, query = following, None


def follow_cursor(
    fetch: Callable[[K | None], P],
    advance: Callable[[P], K | None],
    repeated: Callable[[K], Exception],
) -> Iterator[P]:
    """Each page of a cursor- or time-based export, until `advance(page)` says None (the end).

    `fetch(None)` asks for the first page (from the stored cursor), `fetch(token)` for the one after
    `token`. The page is handed out before its token is checked, so the caller can save it first.
    """
    guard: LoopGuard[K] = LoopGuard(repeated)
    token: K | None = None
    while True:
        page = fetch(token)
        yield page
        token = advance(page)
        if token is None:
            return
        guard.see(token)


def anchored_pages(
    fetch: Callable[[str, int], tuple[list[P], bool]],
    since: str,
    newest: Callable[[list[P]], str | None],
    max_page: int,
    stuck: Callable[[str, int], Exception],
) -> Iterator[list[P]]:
    """Pages of a list sorted by change time, asked as ``since`` + page number, anchored on time.

    Offset paging over a list that changes while we read it can skip an item (one that moves to the end
    pushes the others back a place), and such APIs serve only so many pages. So after each page the
    next request asks again from `newest(page)`, page 1; only when a whole page shares one time does it
    go to the next page number. `fetch(since, number)` answers the page and whether more follow. A
    request asked before, or past `max_page`, raises `stuck(since, number)`.
    """
    number = 1
    asked: set[tuple[str, int]] = set()
    while True:
        if (since, number) in asked or number > max_page:
            raise stuck(since, number)
        asked.add((since, number))
        page, more = fetch(since, number)
        yield page
        if not more or not page:
            return
        last = newest(page)
        if last is not None and last != since:
            since, number = last, 1
        else:
            number += 1
