"""What a search of the simulator's document store matches: one rule for every backend of it.

A search names fields and the value each must have, and optionally text the document's
``name`` must contain; a database narrows the rows first, and this decides exactly.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NAME_FIELD = "name"


def matches(doc: Mapping[str, Any], where: Mapping[str, str], name_contains: str = "") -> bool:
    """Whether ``doc``'s fields are as ``where`` says and its ``name`` contains ``name_contains``."""
    if name_contains and name_contains not in str(doc.get(NAME_FIELD) or ""):
        return False
    return all(doc.get(field) == value for field, value in where.items())
