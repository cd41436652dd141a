"""A name's pattern matches the whole name: ``$`` alone also matches before a final line break,
so ``wage-records\\n`` passed a ``re.match`` of ``^…$`` and was stored with its line break."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.drivers.s3 import driver as s3_driver
from cloudctl.model import grants

CHECKS: dict[str, tuple[Callable[[str], object], str]] = {
    "item id": (grants.check_item_id, "wage-records"),
    "dataset": (grants.check_dataset, "wages/2026"),
    "dns name": (lambda value: base.check_dns_name(value, field="name"), "portal.qd.gov.example"),
    "bucket": (s3_driver._check_bucket_name, "data-wl-001a24"),
}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_a_name_with_a_line_break_at_its_end_is_refused(name: str) -> None:
    check, good = CHECKS[name]
    check(good)
    for bad in (f"{good}\n", f"{good}\r\n"):
        with pytest.raises(errors.InvalidInput):
            check(bad)
