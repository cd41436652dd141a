"""Process settings: where the state lives and which topology to read.

Sources, strongest first: command-line options, ``CLOUDCTL_*`` environment
variables, defaults. No settings object is created at import time. A value that
is not valid raises ``errors.InvalidInput`` naming the setting (exit code 2, one line).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pydantic
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloudctl import errors


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLOUDCTL_", extra="ignore")

    home: Path = Path(".cloudctl")
    database_url: str | None = None
    topology: Path = Path("infra/topology.yaml")
    policies: Path = Path("policies")
    """Directory of the Cedar schema and policies."""
    clouds_yaml: Path | None = None
    """``clouds.yaml`` of the OpenStack-backed centers; ``None``: openstacksdk's standard locations."""
    lockout_failures: int = 5
    """Failed authentications from one client that lock it out ..."""
    lockout_window_s: float = 900.0
    """... when they fall within this many seconds ..."""
    lockout_s: float = 900.0
    """... for this many seconds."""
    audit_retention_days: float = 180.0
    """How long audit records stay in the store; older ones are exported, then pruned."""
    store_attempts: int = 3
    """How often an unreachable store is tried before giving up (exit code 3)."""
    replication_points_kept: int = 3
    """How many replication points (volume snapshots) each protected volume keeps; older
    ones are deleted, the newest never. At least 1."""
    breaker_failures_to_open: Annotated[int, pydantic.Field(ge=1)] = 5
    """Consecutive ``BackendUnavailable`` of a center's driver calls that open its circuit ..."""
    breaker_cooldown_s: Annotated[float, pydantic.Field(gt=0, allow_inf_nan=False)] = 60.0
    """... for this many seconds, after which one call is let through (``services.breaker``)."""
    replication_scrub_streams_per_minute: Annotated[float, pydantic.Field(ge=0, allow_inf_nan=False)] = 2.0
    """How many replication streams ``serve`` scrubs per minute (re-reads every object of the
    target, repairs and audits mismatches); 0 turns the continuous scrub off."""

    @pydantic.model_validator(mode="wrap")
    @classmethod
    def _one_line_errors(cls, values: Any, handler: pydantic.ModelWrapValidatorHandler[Settings]) -> Settings:
        """A bad value is an ``InvalidInput`` naming the setting, not pydantic's report."""
        try:
            return handler(values)
        except pydantic.ValidationError as error:
            first = error.errors()[0]
            name = ".".join(str(part) for part in first["loc"]) or "settings"
            message = str(first["msg"])
            raise errors.InvalidInput(
                f"{message[:1].lower()}{message[1:]}, not {first['input']!r}", field=name
            ) from None

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home.resolve() / 'state.db'}"

    @property
    def uses_default_sqlite(self) -> bool:
        return not self.database_url
