"""What a search of the simulator's document store matches: one rule for every backend of it.

A search names fields and the value each must have, and optionally texts one of which the
document's ``name`` must start with; a database narrows the rows first, and this decides exactly.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

NAME_FIELD = "name"


def matches(doc: Mapping[str, Any], where: Mapping[str, str], name_prefixes: Sequence[str] = ()) -> bool:
    """Whether ``doc``'s fields are as ``where`` says and its ``name`` starts with one of
    ``name_prefixes`` (if any are given)."""
    name = doc.get(NAME_FIELD)
    if name_prefixes and not (isinstance(name, str) and name.startswith(tuple(name_prefixes))):
        return False
    return all(doc.get(field) == value for field, value in where.items())
