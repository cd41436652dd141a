"""Process settings: where the state lives and which topology to read.

Sources, strongest first: command-line options, ``CLOUDCTL_*`` environment
variables, defaults. No settings object is created at import time. A value that
is not valid raises ``errors.InvalidInput`` naming the setting (exit code 2, one line).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any

import pydantic
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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
    lockout_failures: Annotated[int, pydantic.Field(ge=1)] = 5
    """Failed authentications that lock out a token (a known token id with a wrong secret, or
    revoked or expired) or throttle a source (unknown or malformed tokens) ..."""
    lockout_window_s: Annotated[float, pydantic.Field(gt=0, allow_inf_nan=False)] = 900.0
    """... when they fall within this many seconds ..."""
    lockout_s: Annotated[float, pydantic.Field(gt=0, allow_inf_nan=False)] = 900.0
    """... for this many seconds. A throttled source is refused only its failing attempts."""
    trusted_proxies: Annotated[list[ipaddress.IPv4Network | ipaddress.IPv6Network], NoDecode] = []
    """Addresses or networks (comma-separated) of reverse proxies whose ``X-Forwarded-For`` is
    believed; from anyone else the header is ignored. Default: none."""
    auth_audit_aggregate_s: Annotated[float, pydantic.Field(ge=0, allow_inf_nan=False)] = 60.0
    """Failed authentications of one source and token within this many seconds after the first
    (which is recorded at once) are recorded as one summary record with their count."""
    audit_key_file: Path | None = None
    """The audit chain's key ring (``<key id> <base64 secret>`` lines, the last one signs), readable
    by the service user alone. Default ``<home>/audit.key``, created on first use; a file named
    here must exist."""
    metrics_token_file: Path | None = None
    """The scrape token Prometheus presents to read ``/metrics`` (one secret, readable by the
    service user alone). Default ``<home>/metrics.token``, created on first use; a file named
    here must exist (``services.scrape``)."""
    audit_key_provider: str | None = None
    """``module:factory`` of a key provider to use instead of the file (``factory(settings)``
    returns an object with ``current()`` and ``get(key_id)``, see ``services.audit_keys``)."""
    audit_checkpoint_file: Path | None = None
    """Where signed checkpoints of the chain head are appended, outside the database. Default
    ``<home>/audit-checkpoints.jsonl``."""
    audit_checkpoint_interval_s: Annotated[float, pydantic.Field(gt=0, allow_inf_nan=False)] = 300.0
    """How often ``serve`` verifies the newest records and writes a checkpoint."""
    max_body_bytes: Annotated[int, pydantic.Field(ge=1024)] = 1024 * 1024
    """Largest request body the API reads; a larger one is answered 413 unread."""
    max_header_bytes: Annotated[int, pydantic.Field(ge=1024)] = 16 * 1024
    """Largest total size of a request's headers; more is answered 431."""
    max_headers: Annotated[int, pydantic.Field(ge=8)] = 64
    """Most headers a request may carry; more is answered 431."""
    unavailable_retry_after_s: Annotated[int, pydantic.Field(ge=1)] = 5
    """``Retry-After`` of a 503 when the store or a backend does not answer."""
    audit_retention_days: float = 180.0
    """How long audit records stay in the store; older ones are exported, then pruned."""
    store_attempts: int = 3
    """How often an unreachable store is tried before giving up (exit code 3)."""
    replication_points_kept: int = 3
    """How many replication points (volume snapshots) each protected volume keeps; older
    ones are deleted, the newest never. At least 1."""
    db_pool_size: Annotated[int, pydantic.Field(ge=1)] = 10
    """Connections the store keeps open (per process) ..."""
    db_pool_max_overflow: Annotated[int, pydantic.Field(ge=0)] = 10
    """... and how many more it may open under load, never more ..."""
    db_pool_timeout_s: Annotated[float, pydantic.Field(gt=0, allow_inf_nan=False)] = 30.0
    """... for which a caller waits this long before the store counts as unavailable (exit code 3)."""
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

    @pydantic.field_validator("trusted_proxies", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def resolved_audit_key_file(self) -> Path:
        return self.audit_key_file or self.home / "audit.key"

    def resolved_audit_checkpoint_file(self) -> Path:
        return self.audit_checkpoint_file or self.home / "audit-checkpoints.jsonl"

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home.resolve() / 'state.db'}"

    @property
    def uses_default_sqlite(self) -> bool:
        return not self.database_url
