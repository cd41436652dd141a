"""What the services' public models share: moments as text, however the store holds them.

Invariants:

- A ``Timestamp`` field shows a moment as ISO 8601 in UTC, to the second
  (``clock.isoformat``). Given epoch seconds (what store records hold) it converts them; given
  text (a public document read back, e.g. by the CLI) it keeps it as it is.
- A public model that reads store records says so (``from_attributes=True``) and is made by
  ``Model.model_validate(record)``: fields of the same name are read from the record, the
  record's others (``resource_version``, the chain's ``prev_hash``) are left out. Where some
  fields are worked out rather than held (a workload's placements and protection), the model
  is validated from ``{**vars(record), <those fields>}``, which reads the rest alike.
"""

from __future__ import annotations

from typing import Annotated, Any

import pydantic

from cloudctl import clock as clocks


def _as_text(moment: Any) -> Any:
    return moment if isinstance(moment, str) else clocks.isoformat(float(moment))


Timestamp = Annotated[str, pydantic.BeforeValidator(_as_text)]
"""A moment, as ISO 8601 in UTC to the second; read from epoch seconds where a record holds those."""
