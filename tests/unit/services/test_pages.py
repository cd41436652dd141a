"""``services.pages``: one page of a listing by asking for one item more, and the next cursor."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cloudctl.services import pages

ITEMS = [10, 20, 30, 40, 50]


def fetch_after(after: int, asked: list[int]) -> Callable[[int], list[int]]:
    def fetch(size: int) -> list[int]:
        asked.append(size)
        return [item for item in ITEMS if item > after][:size]

    return fetch


@pytest.mark.parametrize(
    ("after", "limit", "page", "cursor"),
    [
        (0, 2, [10, 20], "20"),
        (20, 2, [30, 40], "40"),
        (40, 2, [50], None),
        (30, 2, [40, 50], None),
        (0, 5, ITEMS, None),
        (50, 3, [], None),
    ],
)
def test_a_page_holds_at_most_limit_items_and_a_cursor_only_when_more_follow(
    after: int, limit: int, page: list[int], cursor: str | None
) -> None:
    asked: list[int] = []
    assert pages.one_page(fetch_after(after, asked), limit=limit, cursor_of=str) == (page, cursor)
    assert asked == [limit + 1]


def test_following_the_cursors_lists_every_item_once() -> None:
    seen: list[int] = []
    cursor: str | None = "0"
    while cursor is not None:
        page, cursor = pages.one_page(fetch_after(int(cursor), []), limit=2, cursor_of=str)
        seen += page
    assert seen == ITEMS
