"""Pages of a listing and the cursor of the next one, for every paged list of the services.

A listing asks the store for one item more than a page holds: when that one comes back there
is a next page, which starts after the last item of this one.

Invariants:

- A page holds at most ``limit`` items, in the order the store gave them.
- The next cursor is ``None`` exactly when the store had no item beyond the page; otherwise it
  is ``cursor_of`` the page's last item, what the store's ``after`` takes to go on from there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def one_page(
    fetch: Callable[[int], Sequence[T]], *, limit: int, cursor_of: Callable[[T], str]
) -> tuple[list[T], str | None]:
    """The page ``fetch(size)`` starts (it returns up to ``size`` items) and the next page's cursor."""
    items = fetch(limit + 1)
    page = list(items[:limit])
    return page, (cursor_of(page[-1]) if len(items) > limit else None)
