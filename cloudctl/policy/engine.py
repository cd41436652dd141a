"""The policy engine: Cedar policies from ``policies/`` decide who may do what, and where data goes.

``PolicyEngine.load(directory)`` reads ``schema.cedarschema`` and every ``*.cedar`` file of the
directory once, parses them once into cedar handles and validates the policies against the
schema; ``decide`` then evaluates any number of requests in memory without touching the files.

Invariants:

- every policy carries ``@id("...")`` (unique across files) and ``@reason("...")``; a
  ``Decision`` names the policies that decided it by those ids, with their reasons;
- a denial by a ``forbid`` names the forbid(s); a denial because nothing permits the action
  (Cedar's default deny) has no policy ids and the reason ``NO_POLICY_PERMITS``;
- a policy that fails to evaluate never lets a request through (fail closed);
- an unknown action, role or ill-typed request is bad input (``errors.InvalidInput`` naming
  the field), never a silent deny; a broken policy file names the file and line;
- the data classes are handed in at load (the topology's ``data_classes``, least strict first);
  a placement for a data class outside them is bad input naming ``data_class``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cloudctl import errors
from cloudctl.model import topology
from cloudctl.policy import cedar

NAMESPACE = "Cloudctl"
SCHEMA_FILE = "schema.cedarschema"
POLICY_GLOB = "*.cedar"
NO_POLICY_PERMITS = "no policy permits"

ACTIONS = frozenset(
    {
        "catalog.read",
        "request.create",
        "request.read",
        "request.cancel",
        "request.approve",
        "request.reject",
        "request.auto_approve",
        "workload.read",
        "workload.delete",
        "quota.read",
        "quota.set",
        "org.read",
        "org.manage",
        "token.create",
        "token.revoke",
        "token.list",
        "audit.read",
        "audit.verify",
        "audit.alter",
        "audit.delete",
        "center.read",
        "failover.run",
        "drill.run",
        "placement.place",
        "data.item.read",
        "data.item.publish",
        "data.grant.request",
        "data.grant.read",
        "data.grant.approve",
        "data.grant.bureau_approve",
        "data.grant.skip_bureau",
        "data.grant.revoke",
        "data.grant.use",
    }
)
"""The actions the schema declares; ``decide`` refuses any other name as bad input."""

ROLES = frozenset({"dept-admin", "dept-user", "sysadmin", "secadmin", "auditor"})
DEPARTMENT_ROLES = frozenset({"dept-admin", "dept-user"})

OWNED_TYPES = frozenset({"Request", "Workload", "Quota", "Token", "OrgNode", "DataItem", "DataGrant"})
"""Resource types that belong to an org node: their entities carry ``owner`` and ``owner_path``."""

DECISION_CACHE_SIZE = 20_000
"""Decisions remembered per engine; the cache starts afresh when full."""

_Parsed = TypeVar("_Parsed")

_EVALUATED_POLICY = re.compile(r"policy `([^`]+)`")
_ATTRIBUTE = re.compile(r"attribute `([^`]+)`")


@dataclass(frozen=True)
class Principal:
    """Who asks. Operators (sysadmin, secadmin, auditor) have no department."""

    id: str
    role: str
    department: str = ""
    department_path: tuple[str, ...] = ()


@dataclass(frozen=True)
class Resource:
    """What is acted on. ``owner_path`` runs from the org root down to ``owner``, both included."""

    type: str
    id: str
    owner: str = ""
    owner_path: tuple[str, ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """The outcome and the ``@id`` of every policy that decided it, with its ``@reason``."""

    allowed: bool
    policy_ids: tuple[str, ...]
    reasons: tuple[str, ...]

    def one_line(self) -> str:
        """``denied by dept-isolation (departments see ...)``, or ``denied: no policy permits``."""
        verdict = "allowed" if self.allowed else "denied"
        if self.policy_ids:
            return f"{verdict} by {', '.join(self.policy_ids)} ({'; '.join(self.reasons)})"
        return f"{verdict}: {'; '.join(self.reasons)}"


@dataclass(frozen=True)
class PolicyInfo:
    """One loaded policy: its ``@id``, ``@reason``, effect and where it is written."""

    id: str
    reason: str
    effect: cedar.Effect
    file: Path
    line: int

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"


def center_resource(center: topology.Center) -> Resource:
    """The ``Center`` resource of a topology center, as ``placement.place`` and failover need it."""
    return Resource(
        type="Center",
        id=center.name,
        attributes={"name": center.name, "role": center.role.value, "site": center.site},
    )


class PolicyEngine:
    """Parsed policies and schema, evaluated in-process; build it with ``PolicyEngine.load``."""

    def __init__(
        self,
        *,
        policy_set: cedar.PolicySet,
        schema: cedar.Schema,
        policies: Mapping[str, PolicyInfo],
        files: tuple[Path, ...],
        digest: str,
        data_classes: tuple[str, ...] = topology.DEFAULT_DATA_CLASSES,
    ) -> None:
        self._policy_set = policy_set
        self._schema = schema
        self._order = {policy_id: index for index, policy_id in enumerate(policies)}
        self.policies: Mapping[str, PolicyInfo] = dict(policies)
        """Every loaded policy by its ``@id``, in file order."""
        self.files = files
        """The files read (schema first), each exactly once, at load."""
        self.digest = digest
        """sha256 (hex) of what was read: each file's name and text, in ``files``' order. Two
        processes with the same digest decide alike; serve replicas report theirs."""
        self.data_classes = data_classes
        """The data classes placement knows, least strict first (the topology's)."""
        self._decisions: dict[Hashable, Decision] = {}

    @classmethod
    def load(
        cls, directory: Path, *, data_classes: tuple[str, ...] = topology.DEFAULT_DATA_CLASSES
    ) -> PolicyEngine:
        """Read, parse and validate the schema and policies of ``directory``, once; ``data_classes``
        are the topology's (``Topology.data_classes``)."""
        return _load(directory, data_classes=data_classes)

    # --- decisions --------------------------------------------------------------------------

    def decide(
        self,
        *,
        principal: Principal,
        action: str,
        resource: Resource,
        context: Mapping[str, Any] | None = None,
    ) -> Decision:
        """Evaluate one request; raise ``errors.InvalidInput`` if the request itself is malformed.

        Decisions are remembered per exact request (principal, action, resource, context):
        the loaded policies never change, so the same question always gets the same answer.
        """
        key = _request_key(principal=principal, action=action, resource=resource, context=context)
        if key is not None:
            known = self._decisions.get(key)
            if known is not None:
                return known
        decision = self._evaluate(principal=principal, action=action, resource=resource, context=context)
        if key is not None:
            if len(self._decisions) >= DECISION_CACHE_SIZE:
                self._decisions.clear()
            self._decisions[key] = decision
        return decision

    def _evaluate(
        self,
        *,
        principal: Principal,
        action: str,
        resource: Resource,
        context: Mapping[str, Any] | None,
    ) -> Decision:
        _check_request(principal=principal, action=action)
        principal_uid = _uid("User", principal.id)
        resource_uid = _uid(resource.type, resource.id)
        entities_json = cedar.to_json([_principal_entity(principal), _resource_entity(resource)])
        answer = cedar.authorize(
            policies=self._policy_set,
            schema=self._schema,
            principal=principal_uid,
            action=_uid("Action", action),
            resource=resource_uid,
            context=dict(context or {}),
            entities_json=entities_json,
        )
        if answer.verdict == "NoDecision":
            message = answer.errors[0] if answer.errors else "cedar reached no decision"
            raise errors.InvalidInput(
                _readable(message, entities_json=entities_json),
                field=_field_of(message, resource_type=resource.type),
            )
        if answer.errors:
            return self._failed_closed(answer)
        deciding = [self.policies[policy_id] for policy_id in answer.determining]
        deciding.sort(key=lambda policy: self._order[policy.id])
        allowed = answer.verdict == "Allow"
        if not deciding:
            return Decision(allowed=allowed, policy_ids=(), reasons=(NO_POLICY_PERMITS,))
        return Decision(
            allowed=allowed,
            policy_ids=tuple(policy.id for policy in deciding),
            reasons=tuple(policy.reason for policy in deciding),
        )

    def require(
        self,
        *,
        principal: Principal,
        action: str,
        resource: Resource,
        context: Mapping[str, Any] | None = None,
    ) -> Decision:
        """``decide``, raising ``errors.PolicyDenied`` (exit 2) unless the action is allowed."""
        decision = self.decide(principal=principal, action=action, resource=resource, context=context)
        if not decision.allowed:
            raise errors.PolicyDenied(decision, action=action)
        return decision

    def placement_decisions(
        self, *, principal: Principal, data_class: str, tier: str, centers: Iterable[Resource]
    ) -> dict[str, Decision]:
        """``placement.place`` for each center (by center id), for data of ``data_class`` in ``tier``."""
        if data_class not in self.data_classes:
            known = ", ".join(self.data_classes)
            raise errors.InvalidInput(
                f"unknown data class {data_class!r} (known: {known})", field="data_class"
            )
        context = {"data_class": data_class, "tier": tier}
        return {
            center.id: self.decide(
                principal=principal, action="placement.place", resource=center, context=context
            )
            for center in centers
        }

    def allowed_centers(
        self, *, principal: Principal, data_class: str, tier: str, centers: Iterable[Resource]
    ) -> list[Resource]:
        """The centers, in the order given, where data of ``data_class`` in ``tier`` may be placed."""
        candidates = list(centers)
        decisions = self.placement_decisions(
            principal=principal, data_class=data_class, tier=tier, centers=candidates
        )
        return [center for center in candidates if decisions[center.id].allowed]

    def require_placement(
        self, *, principal: Principal, data_class: str, tier: str, centers: Iterable[Resource]
    ) -> None:
        """Raise ``errors.PolicyDenied`` (field ``placement.place``) if any needed center is refused.

        Pass every center the tier needs (local and DR): one refusal refuses the tier.
        """
        decisions = self.placement_decisions(
            principal=principal, data_class=data_class, tier=tier, centers=centers
        )
        for center_id, decision in decisions.items():
            if not decision.allowed:
                refused = Decision(
                    allowed=False,
                    policy_ids=decision.policy_ids,
                    reasons=tuple(f"center {center_id}: {reason}" for reason in decision.reasons),
                )
                raise errors.PolicyDenied(refused, action="placement.place")

    def _failed_closed(self, answer: cedar.Answer) -> Decision:
        """A policy errored while evaluating: Cedar skips it, cloudctl refuses instead."""
        failed: list[str] = []
        for message in answer.errors:
            for policy_id in _EVALUATED_POLICY.findall(message):
                if policy_id in self.policies and policy_id not in failed:
                    failed.append(policy_id)
        return Decision(
            allowed=False,
            policy_ids=tuple(failed),
            reasons=(f"policy evaluation failed: {answer.errors[0]}",),
        )


# --- request building -------------------------------------------------------------------------


def _request_key(
    *, principal: Principal, action: str, resource: Resource, context: Mapping[str, Any] | None
) -> Hashable | None:
    """Everything a decision depends on, as a dict key; ``None`` when a value cannot be one."""
    key = (
        principal,
        action,
        resource.type,
        resource.id,
        resource.owner,
        resource.owner_path,
        tuple(sorted(resource.attributes.items())),
        tuple(sorted((context or {}).items())),
    )
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _uid(entity_type: str, entity_id: str) -> dict[str, str]:
    return {"type": f"{NAMESPACE}::{entity_type}", "id": entity_id}


def _check_request(*, principal: Principal, action: str) -> None:
    if action not in ACTIONS:
        raise errors.InvalidInput(
            f"unknown action {action!r} (known: {', '.join(sorted(ACTIONS))})", field="action"
        )
    if principal.role not in ROLES:
        raise errors.InvalidInput(
            f"unknown role {principal.role!r} (known: {', '.join(sorted(ROLES))})", field="principal.role"
        )
    if principal.role in DEPARTMENT_ROLES and not principal.department:
        raise errors.InvalidInput(
            f"a {principal.role} must belong to a department", field="principal.department"
        )


def _principal_entity(principal: Principal) -> dict[str, Any]:
    return {
        "uid": _uid("User", principal.id),
        "attrs": {
            "role": principal.role,
            "department": principal.department,
            "department_path": list(principal.department_path),
        },
        "parents": [],
    }


def _resource_entity(resource: Resource) -> dict[str, Any]:
    attrs: dict[str, Any] = dict(resource.attributes)
    if resource.type in OWNED_TYPES:
        attrs["owner"] = resource.owner
        attrs["owner_path"] = list(resource.owner_path)
    return {"uid": _uid(resource.type, resource.id), "attrs": attrs, "parents": []}


def _field_of(message: str, *, resource_type: str) -> str:
    """Which part of the request cedar refused, as a field name."""
    attribute = _ATTRIBUTE.search(message)
    if "context" in message:
        return f"context.{attribute.group(1)}" if attribute else "context"
    if f"{NAMESPACE}::User::" in message and "entities" in message:
        return f"principal.{attribute.group(1)}" if attribute else "principal"
    if "resource type" in message or "not declared in the schema" in message:
        return "resource.type"
    if f"{NAMESPACE}::{resource_type}::" in message:
        return f"resource.{attribute.group(1)}" if attribute else "resource"
    return "request"


def _readable(message: str, *, entities_json: str) -> str:
    """Cedar's message without the entity JSON it echoes back, or its generic prefix."""
    message = message.replace(f"failed to parse entities from:\n{entities_json}: ", "")
    return message.removeprefix("failed to build request: ")


# --- loading ----------------------------------------------------------------------------------


def _read(path: Path) -> str:
    try:
        return errors.read_input_file(path, field="policies")
    except UnicodeDecodeError as error:
        reason = f"cannot read {errors.named_path(path)}: {error}"
        raise errors.InvalidInput(reason, field="policies") from None


def _load(directory: Path, *, data_classes: tuple[str, ...]) -> PolicyEngine:
    if not directory.is_dir():
        raise errors.InvalidInput(
            f"no directory of Cedar policies at {errors.named_path(directory)}", field="policies"
        )
    schema_path = directory / SCHEMA_FILE
    schema_text = _read(schema_path)
    policy_paths = sorted(directory.glob(POLICY_GLOB))
    if not policy_paths:
        raise errors.InvalidInput(f"no {POLICY_GLOB} files", field=str(directory))
    texts = {path: _read(path) for path in policy_paths}

    schema = _parse(schema_path, schema_text, cedar.parse_schema)
    policy_set, policies = _parse_policies(texts)
    _validate(texts=texts, schema=schema, policies=policies, schema_path=schema_path)
    return PolicyEngine(
        policy_set=policy_set,
        schema=schema,
        policies=policies,
        files=(schema_path, *policy_paths),
        digest=_digest({schema_path: schema_text, **texts}),
        data_classes=data_classes,
    )


def _digest(texts: Mapping[Path, str]) -> str:
    """sha256 of each file's name (not its directory) and text, in order, each part ended by NUL."""
    digest = hashlib.sha256()
    for path, text in texts.items():
        digest.update(path.name.encode() + b"\0" + text.encode() + b"\0")
    return digest.hexdigest()


def _parse(path: Path, text: str, parse: Callable[[str], _Parsed]) -> _Parsed:
    try:
        parsed = parse(text)
    except ValueError as error:
        line = cedar.syntax_error_line(text, parse)
        where = f"{path}:{line}" if line is not None else str(path)
        raise errors.InvalidInput(str(error), field=where) from None
    return parsed


def _parse_policies(texts: Mapping[Path, str]) -> tuple[cedar.PolicySet, dict[str, PolicyInfo]]:
    """Parse each file once, then combine its policies into one set keyed by their ``@id``."""
    parsed: dict[str, cedar.ParsedPolicy] = {}
    infos: dict[str, PolicyInfo] = {}
    for path, text in texts.items():
        file_set = _parse(path, text, cedar.parse_policies)
        try:
            policies = cedar.policies_of(file_set)
        except ValueError as error:
            raise errors.InvalidInput(str(error), field=str(path)) from None
        for index, policy in enumerate(policies):
            earlier = [p.annotations.get("id") for p in policies[:index]]
            info = _policy_info(path=path, text=text, policy=policy, index=index, earlier_ids=earlier)
            if info.id in infos:
                raise errors.InvalidInput(
                    f"duplicate @id {info.id!r} (first at {infos[info.id].location})", field=info.location
                )
            infos[info.id] = info
            parsed[info.id] = policy
    try:
        combined = cedar.combine(parsed)
    except ValueError as error:
        raise errors.InvalidInput(
            f"cannot combine the policies: {error}", field=str(next(iter(texts)))
        ) from None
    return combined, infos


def _policy_info(
    *, path: Path, text: str, policy: cedar.ParsedPolicy, index: int, earlier_ids: list[str | None]
) -> PolicyInfo:
    """Check the annotations of the ``index``-th policy of the file and find its line."""
    policy_id = policy.annotations.get("id", "")
    reason = policy.annotations.get("reason", "")
    if policy_id:
        line = _line_of_id(text, policy_id, occurrence=earlier_ids.count(policy_id))
    else:
        line = _policy_start_lines(text)[index]
    where = f"{path}:{line}"
    if not policy_id:
        raise errors.InvalidInput('every policy needs a non-empty @id("...") annotation', field=where)
    if not reason:
        raise errors.InvalidInput(
            f'policy {policy_id!r} needs a non-empty @reason("...") annotation', field=where
        )
    return PolicyInfo(id=policy_id, reason=reason, effect=policy.effect, file=path, line=line)


def _line_of_id(text: str, policy_id: str, *, occurrence: int) -> int:
    """The line of the ``occurrence``-th (from 0) ``@id("policy_id")`` annotation in ``text``."""
    annotation = re.compile(rf'^[ \t]*@id\s*\(\s*"{re.escape(policy_id)}"\s*\)', re.MULTILINE)
    matches = list(annotation.finditer(text))
    if not matches:
        return 1
    match = matches[min(occurrence, len(matches) - 1)]
    return text.count("\n", 0, match.start()) + 1


def _policy_start_lines(text: str) -> list[int]:
    """The first line of each policy in ``text``; only used to point at a policy without ``@id``."""
    lines = text.splitlines()
    starts: list[int] = []
    previous_end = 0
    for count in range(1, len(lines) + 1):
        try:
            parsed = len(cedar.parse_policies("\n".join(lines[:count])))
        except ValueError:
            continue
        while len(starts) < parsed:
            start = previous_end + 1
            while start < count and (
                not lines[start - 1].strip() or lines[start - 1].lstrip().startswith("//")
            ):
                start += 1
            starts.append(start)
        previous_end = count
    return starts


def _validate(
    *, texts: Mapping[Path, str], schema: cedar.Schema, policies: Mapping[str, PolicyInfo], schema_path: Path
) -> None:
    """Type-check the policies against the schema, and the schema against the engine's contract."""
    problems = cedar.validate("\n".join(texts.values()), schema)
    if problems:
        problem = problems[0]
        policy = policies.get(problem.id_annotation)
        message = problem.message.replace(f"`{problem.cedar_id}`", f"`{problem.id_annotation}`")
        where = policy.location if policy is not None else str(schema_path)
        raise errors.InvalidInput(f"does not match the schema: {message}", field=where)
    probes = [
        f'permit (principal, action == {NAMESPACE}::Action::"{action}", resource);'
        for action in sorted(ACTIONS)
    ] + [
        f"permit (principal, action, resource is {NAMESPACE}::{owned}) "
        'when { resource.owner == "" && resource.owner_path.isEmpty() };'
        for owned in sorted(OWNED_TYPES)
    ]
    contract = cedar.validate("\n".join(probes), schema)
    if contract:
        missing = "; ".join(sorted({problem.message for problem in contract}))
        raise errors.InvalidInput(
            f"the schema must declare every action and owned resource type cloudctl uses: {missing}",
            field=str(schema_path),
        )
