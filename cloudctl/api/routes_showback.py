"""``/v1/showback`` and ``/v1/capacity/forecast``: the bill of a month and the capacity forecast.

Departments read the bill of their own subtree (another department's id answers 404, as a
missing one does); operators read any node's and the forecast of every center.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cloudctl.api.app import ContextDep, PrincipalDep
from cloudctl.model import pricing
from cloudctl.services import capacity, identity, showback

Month = Annotated[
    str | None,
    Query(
        max_length=7,
        description="The month billed, YYYY-MM (UTC); default the current month, billed to date",
        examples=["2026-11"],
    ),
]


def router() -> APIRouter:
    routes = APIRouter()

    @routes.get("/showback", tags=["showback"])
    def get_showback(
        ctx: ContextDep,
        principal: PrincipalDep,
        month: Month = None,
        department: Annotated[
            str | None,
            Query(
                max_length=40,
                description="The org node whose subtree is billed (city, bureau, district or department id); "
                "default the caller's department, or the whole city for operators",
                examples=["hrss"],
            ),
        ] = None,
        by: Annotated[
            str | None,
            Query(
                max_length=20,
                description="Group the rows by bureau, district, center or tier; default the org tree "
                "(``department``)",
                examples=["center"],
            ),
        ] = None,
    ) -> showback.ShowbackPublic:
        """A month's bill (CNY, exact to the fen) of the caller's department, or any node's for operators.

        ``allocated`` prices the quota held (the chargeback), ``consumed`` what the backends reported
        (the showback). A department reads its own subtree only: another department's id answers 404,
        as a missing one does. A malformed month, one not begun or an unknown grouping answers 422.
        """
        chosen = month if month is not None else pricing.month_of(ctx.clock.now()).name
        return showback.bill(
            ctx, month=chosen, department=department, by=by, principal=principal, dept_field="department"
        )

    @routes.get("/capacity/forecast", tags=["operators"])
    def get_capacity_forecast(
        ctx: ContextDep,
        principal: PrincipalDep,
        center: Annotated[
            str | None,
            Query(
                max_length=40,
                description="Only this center (its name); default every center",
                examples=["qd-a"],
            ),
        ] = None,
    ) -> capacity.CapacityForecastPublic:
        """Each center's allocation trend, days until its threshold and the confidence (operators).

        The trend is a least-squares line through the hourly samples of allocated capacity over the
        topology's window, plus the allocation now; its R² is the confidence.
        """
        identity.authorize(
            ctx,
            principal=principal,
            action="center.read",
            resource_type="Center",
            resource_id=center or "all",
            attributes={"name": center or "all", "role": "all", "site": "all"},
        )
        return capacity.forecast(ctx, center=center)

    return routes
