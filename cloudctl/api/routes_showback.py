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
        department: str | None = None,
        by: Annotated[
            str | None, Query(description="bureau, district, center or tier; default the org tree")
        ] = None,
    ) -> showback.ShowbackPublic:
        """A month's bill (CNY, exact to the fen) of the caller's department, or any node's for operators."""
        chosen = month if month is not None else pricing.month_of(ctx.clock.now()).name
        return showback.bill(
            ctx, month=chosen, department=department, by=by, principal=principal, dept_field="department"
        )

    @routes.get("/capacity/forecast", tags=["operators"])
    def get_capacity_forecast(
        ctx: ContextDep, principal: PrincipalDep, center: str | None = None
    ) -> capacity.CapacityForecastPublic:
        """Each center's allocation trend, days until its threshold and the confidence (operators)."""
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
