"""Data items and the grants that share them across departments: kinds, states, and the rules
a grant request must meet before any policy is asked. Pure: no I/O.

Invariants:
- a grant moves ``requested`` → ``active`` → ``expired`` | ``revoked``, or ``requested`` →
  ``expired`` | ``revoked``; ``expired`` and ``revoked`` are final (``GRANT_TRANSITIONS``);
- a grant is ``active`` only once the provider approved it and, where its data class needs
  the big-data bureau, the bureau approved it too (``is_fully_approved``);
- a bucket prefix is relative, ends with ``/`` and names no ``..`` segment, so a grant covers
  exactly the keys under it and nothing beside it;
- an expiry lies after the moment of the request and at most ``MAX_GRANT_DAYS`` later.

The data classes an item and a grant name are the topology's (``Topology.data_classes``); the
services check them there.
"""

from __future__ import annotations

import enum
import re

from cloudctl import errors

MAX_GRANT_DAYS = 366
"""The longest a grant may run: sharing is renewed, never open-ended."""

MAX_PURPOSE_CHARS = 60
MAX_DESCRIPTION_CHARS = 1000
MAX_PREFIX_CHARS = 512
_ITEM_ID = re.compile(r"^[a-z][a-z0-9-]{2,59}$")
_DATASET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")


class ItemKind(enum.StrEnum):
    BUCKET_PREFIX = "bucket-prefix"
    DATASET = "dataset"


class GrantState(enum.StrEnum):
    REQUESTED = "requested"
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


GRANT_TRANSITIONS: dict[GrantState, frozenset[GrantState]] = {
    GrantState.REQUESTED: frozenset({GrantState.ACTIVE, GrantState.EXPIRED, GrantState.REVOKED}),
    GrantState.ACTIVE: frozenset({GrantState.EXPIRED, GrantState.REVOKED}),
    GrantState.EXPIRED: frozenset(),
    GrantState.REVOKED: frozenset(),
}
LIVE_STATES = (GrantState.REQUESTED, GrantState.ACTIVE)
"""States a grant can still leave: the periodic pass expires these."""


def check_transition(current: GrantState, target: GrantState, *, grant_id: str) -> None:
    if current is target:
        return
    if target not in GRANT_TRANSITIONS[current]:
        raise errors.Conflict(f"grant {grant_id} is {current}; it cannot become {target}", field="state")


def is_fully_approved(*, provider_approved: bool, needs_bureau: bool, bureau_approved: bool) -> bool:
    return provider_approved and (bureau_approved or not needs_bureau)


def check_item_id(item_id: str) -> None:
    if not _ITEM_ID.fullmatch(item_id):
        raise errors.InvalidInput(
            f"{item_id!r} is not an item id (3-60 of a-z, 0-9, '-', starting with a letter)", field="id"
        )


def normalise_prefix(prefix: str) -> str:
    """The prefix a grant covers: relative, ``/``-terminated, no empty or ``..`` segment."""
    cleaned = prefix.strip()
    if not cleaned:
        raise errors.InvalidInput(
            "a bucket-prefix item names a prefix, e.g. households/2026/", field="prefix"
        )
    if not cleaned.endswith("/"):
        cleaned += "/"
    segments = cleaned[:-1].split("/")
    if (
        cleaned.startswith("/")
        or len(cleaned) > MAX_PREFIX_CHARS
        or any(segment in ("", ".", "..") for segment in segments)
        or any(character in cleaned for character in '*?$\\"')
    ):
        raise errors.InvalidInput(
            f"{prefix!r} is not a prefix (relative segments of letters, digits, '.', '-', '_', "
            f"at most {MAX_PREFIX_CHARS} characters, no wildcards)",
            field="prefix",
        )
    return cleaned


def check_dataset(dataset: str) -> None:
    if not _DATASET.fullmatch(dataset):
        raise errors.InvalidInput(
            f"{dataset!r} is not a dataset name (1-200 of letters, digits, '.', '_', '/', '-')",
            field="dataset",
        )


def check_purpose(purpose: str) -> str:
    cleaned = purpose.strip()
    if not cleaned:
        raise errors.InvalidInput("say what the data is for (e.g. social-assistance)", field="purpose")
    if len(cleaned) > MAX_PURPOSE_CHARS:
        raise errors.InvalidInput(f"at most {MAX_PURPOSE_CHARS} characters", field="purpose")
    return cleaned


def check_expiry(expires_at: float, *, now: float) -> None:
    if expires_at <= now:
        raise errors.InvalidInput("the expiry must lie in the future", field="expires_at")
    if expires_at - now > MAX_GRANT_DAYS * 86400:
        raise errors.InvalidInput(f"a grant runs at most {MAX_GRANT_DAYS} days", field="expires_at")
