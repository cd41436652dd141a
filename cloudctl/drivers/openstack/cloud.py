"""One OpenStack cloud (one cloud center): its connection, its projects, its settings.

``Cloud.from_clouds_yaml(center=...)`` reads the ``clouds.yaml`` entry named after the
center (the convention: cloud name = center name, unless ``cloud_name`` says otherwise)
from the file given or from openstacksdk's usual places (``$OS_CLIENT_CONFIG_FILE``,
``./clouds.yaml``, ``~/.config/openstack/``, ``/etc/openstack/``).

Invariants:

- The entry's credentials are a cloud administrator's, scoped to an admin project: reads
  and deletes go through that connection across all projects. Things that belong to a
  department (servers, volumes, snapshots) are created through a connection scoped to the
  department's project, so that Nova and Cinder charge that project's quotas.
- A department is one Keystone project per cloud center, named by the department's org id
  (``ensure_project``, idempotent); the driver's user gets the ``member`` role there.
  Project ids and names are cached: a project is never renamed under cloudctl.
- Settings cloudctl needs beyond the standard keys live in the entry's ``cloudctl:``
  mapping: ``image`` (name of the image servers boot from, default ``cloudctl-base``),
  ``network`` (what servers attach to: ``tenant``, the default, for each department's own
  tenant network; ``none`` for no network; or the name of a network the cloud shares; see
  ``network``),
  ``operation_timeout_s`` (how long a create or delete may take to settle, default 300),
  ``poll_interval_s`` (how often it is checked meanwhile, default 0.5).
- Every call goes through the shared ``drivers.calls.Caller`` with the rules of ``calls``;
  nothing from the SDK escapes.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import openstack.config
import openstack.connection
import openstack.exceptions
from openstack.identity.v3 import _proxy as identity_v3

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers.openstack import calls

T = TypeVar("T")

DEFAULT_DOMAIN = "default"
MEMBER_ROLE = "member"
DEFAULT_IMAGE = "cloudctl-base"
NO_NETWORK = "none"
TENANT_NETWORK = "tenant"
DEFAULT_OPERATION_TIMEOUT_S = 300.0
DEFAULT_POLL_INTERVAL_S = 0.5


@dataclasses.dataclass(frozen=True)
class Settings:
    """cloudctl's own settings of one cloud, from the ``cloudctl:`` mapping of its entry."""

    image: str = DEFAULT_IMAGE
    network: str = TENANT_NETWORK
    operation_timeout_s: float = DEFAULT_OPERATION_TIMEOUT_S
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any], *, cloud_name: str) -> Settings:
        """The settings of a ``clouds.yaml`` entry; ``errors.InvalidInput`` naming a wrong key."""
        field = "clouds.yaml.cloudctl"
        raw = entry.get("cloudctl") or {}
        if not isinstance(raw, Mapping):
            raise errors.InvalidInput(f"must be a mapping in cloud {cloud_name}", field=field)
        known = sorted(item.name for item in dataclasses.fields(cls))
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise errors.InvalidInput(
                f"unknown keys {', '.join(unknown)} in cloud {cloud_name} (known: {', '.join(known)})",
                field=field,
            )
        try:
            return cls(
                image=str(raw.get("image", DEFAULT_IMAGE)),
                network=str(raw.get("network", TENANT_NETWORK)),
                operation_timeout_s=float(raw.get("operation_timeout_s", DEFAULT_OPERATION_TIMEOUT_S)),
                poll_interval_s=float(raw.get("poll_interval_s", DEFAULT_POLL_INTERVAL_S)),
            )
        except (TypeError, ValueError) as error:
            raise errors.InvalidInput(f"{error} in cloud {cloud_name}", field=field) from error


class Cloud:
    """The connection to one center's OpenStack cloud and the department projects in it."""

    def __init__(
        self,
        *,
        center: str,
        connection: openstack.connection.Connection,
        settings: Settings,
        clock: clocks.Clock,
        retry: calls.RetryPolicy,
        cloud_name: str | None = None,
    ) -> None:
        self.center = center
        self.cloud_name = cloud_name or center
        self.admin = connection
        self.settings = settings
        self.clock = clock
        self.caller = calls.caller(center=center, cloud_name=self.cloud_name, clock=clock, retry=retry)
        self._lock = threading.Lock()
        self._project_ids: dict[tuple[str, str], str] = {}
        self._project_names: dict[str, str] = {}
        self._project_connections: dict[str, openstack.connection.Connection] = {}
        self._member_role_id: str | None = None
        self._ensured: set[str] = set()

    @classmethod
    def from_clouds_yaml(
        cls,
        *,
        center: str,
        clouds_yaml: Path | None = None,
        cloud_name: str | None = None,
        clock: clocks.Clock | None = None,
        retry: calls.RetryPolicy | None = None,
    ) -> Cloud:
        """The cloud of ``center``, from the ``clouds.yaml`` entry named ``cloud_name`` (default: center)."""
        name = cloud_name or center
        policy = retry or calls.RetryPolicy()
        if clouds_yaml is not None and not clouds_yaml.is_file():
            raise errors.InvalidInput(f"no file {clouds_yaml}", field="clouds_yaml")
        try:
            config = openstack.config.OpenStackConfig(
                config_files=[str(clouds_yaml)] if clouds_yaml is not None else None,
                load_envvars=False,
            )
            region = config.get_one(cloud=name, api_timeout=policy.api_timeout_s)
        except openstack.exceptions.ConfigException as error:
            where = clouds_yaml or "clouds.yaml"
            raise errors.InvalidInput(
                f"no usable cloud {name!r} for center {center} in {where}: {error}", field="clouds_yaml"
            ) from error
        settings = Settings.from_entry(region.config, cloud_name=name)
        return cls(
            center=center,
            connection=openstack.connection.Connection(config=region),
            settings=settings,
            clock=clock or clocks.SystemClock(),
            retry=policy,
            cloud_name=name,
        )

    @property
    def identity(self) -> identity_v3.Proxy:
        """The admin connection's Identity v3 API (the only Keystone API left)."""
        proxy = self.admin.identity
        if not isinstance(proxy, identity_v3.Proxy):
            raise errors.OperationFailed(
                f"cloud {self.cloud_name} of center {self.center} does not offer Identity v3",
                field="identity_api_version",
            )
        return proxy

    def call(self, operation: Callable[[], T], *, what: str, project: str | None = None) -> T:
        return self.caller.call(operation, what=what, project=project)

    def close(self) -> None:
        with self._lock:
            connections = [*self._project_connections.values(), self.admin]
            self._project_connections.clear()
        for connection in connections:
            connection.close()

    # --- projects ------------------------------------------------------------------------

    def find_project_id(self, name: str, *, domain: str = DEFAULT_DOMAIN) -> str | None:
        """The id of the department's project, or ``None`` when it has none in this cloud."""
        with self._lock:
            cached = self._project_ids.get((domain, name))
        if cached is not None:
            return cached
        found = self.call(
            lambda: list(self.identity.projects(name=name, domain_id=domain)),
            what=f"project {name}",
        )
        if not found:
            return None
        self._remember(domain, name, found[0].id)
        return str(found[0].id)

    def ensure_project(self, name: str, *, domain: str = DEFAULT_DOMAIN) -> str:
        """The id of the department's project, created when missing; idempotent."""
        project_id = self.find_project_id(name, domain=domain)
        if project_id is not None and project_id in self._ensured:
            return project_id
        if project_id is None:
            try:
                created = self.call(
                    lambda: self.identity.create_project(
                        name=name, domain_id=domain, description=f"cloudctl department {name}"
                    ),
                    what=f"project {name}",
                )
                project_id = str(created.id)
            except errors.Conflict:
                # Created by someone else since we looked: take theirs.
                project_id = self.find_project_id(name, domain=domain)
                if project_id is None:
                    raise
            self._remember(domain, name, project_id)
        member_role_id = self._member_role()
        user_id = self.call(lambda: self.admin.current_user_id, what=f"user of cloud {self.cloud_name}")
        if user_id is None:
            raise errors.OperationFailed(f"cloud {self.cloud_name} gave no user id", field="credentials")
        self.call(
            lambda: self.identity.assign_project_role_to_user(project_id, user_id, member_role_id),
            what=f"project {name}",
        )
        with self._lock:
            self._ensured.add(project_id)
        return project_id

    def project_name(self, project_id: str) -> str:
        """The name of a project by id (a project cloudctl did not make keeps its own name)."""
        with self._lock:
            cached = self._project_names.get(project_id)
        if cached is not None:
            return cached
        try:
            project = self.call(lambda: self.identity.get_project(project_id), what=f"project {project_id}")
        except errors.NotFound:
            return project_id
        self._remember(str(project.domain_id), str(project.name), project_id)
        return str(project.name)

    def project_connection(self, name: str) -> openstack.connection.Connection:
        """A connection scoped to the department's project (created when missing)."""
        project_id = self.ensure_project(name)
        with self._lock:
            connection = self._project_connections.get(project_id)
        if connection is None:
            connection = self.call(
                lambda: self.admin.connect_as_project({"id": project_id}), what=f"project {name}"
            )
            with self._lock:
                self._project_connections.setdefault(project_id, connection)
                connection = self._project_connections[project_id]
        return connection

    def _member_role(self) -> str:
        if self._member_role_id is None:
            roles = self.call(lambda: list(self.identity.roles(name=MEMBER_ROLE)), what="role member")
            if not roles:
                raise errors.OperationFailed(
                    f"cloud {self.cloud_name} of center {self.center} has no role {MEMBER_ROLE!r}",
                    field="role",
                )
            self._member_role_id = str(roles[0].id)
        return self._member_role_id

    def _remember(self, domain: str, name: str, project_id: str) -> None:
        with self._lock:
            self._project_ids[(domain, name)] = project_id
            self._project_names[project_id] = name

    # --- waiting -------------------------------------------------------------------------

    def wait_until(
        self,
        condition: Callable[[], bool],
        *,
        what: str,
        timeout_s: float | None = None,
    ) -> None:
        """Poll ``condition`` on the injected clock; ``errors.OperationFailed`` when it stays false."""
        limit_s = self.settings.operation_timeout_s if timeout_s is None else timeout_s
        deadline = self.clock.now() + limit_s
        while not condition():
            remaining_s = deadline - self.clock.now()
            if remaining_s <= 0:
                raise errors.OperationFailed(
                    f"{what} in center {self.center} did not happen within {limit_s:g} s", field="timeout"
                )
            self.clock.sleep(min(self.settings.poll_interval_s, remaining_s))
