"""A small typed boundary around cedarpy: the only module in cloudctl that imports it.

cedarpy hands back loosely typed dicts and raises ``ValueError`` with messages that carry no
line numbers. This module turns both into plain typed values: parsed handles (``PolicySet``,
``Schema``) that are built once and reused for every evaluation, an ``Answer`` per
authorization, and ``syntax_error_line`` that finds the line of a syntax error by parsing
growing prefixes of the text (only ever run on the error path).

Files are parsed one by one (so an error names its file) and their policies combined with
``combine`` from the parsed nodes, not by re-parsing text: each policy's cedar id in the
combined set is the id the caller chose (its ``@id``), so cedar reports the determining
policies by those ids directly instead of by positional ``policyN`` ids.

Invariants: nothing here reads files or keeps state; every function is pure given its
arguments; a returned handle is immutable, so sharing it between threads is safe.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import cedarpy
from cedarpy import pst

PolicySet = cedarpy.PolicySet
Schema = cedarpy.Schema

Verdict = Literal["Allow", "Deny", "NoDecision"]
Effect = Literal["permit", "forbid"]

_END_OF_INPUT = "unexpected end of input"
_UNRESOLVED_TYPE = re.compile(r"failed to resolve type: (\S+)")
_POSITIONAL_ID = re.compile(r"policy(\d+)")


@dataclass(frozen=True)
class ParsedPolicy:
    """One policy of a parsed set: cedar's id, its effect, its annotations and its parsed node."""

    cedar_id: str
    effect: Effect
    annotations: Mapping[str, str]
    node: pst.Template


@dataclass(frozen=True)
class Answer:
    """What cedar decided: the verdict, the determining policies (cedar ids) and any errors."""

    verdict: Verdict
    determining: tuple[str, ...]
    errors: tuple[str, ...]


@dataclass(frozen=True)
class ValidationProblem:
    """One policy that does not type-check against the schema; ``id_annotation`` may be empty."""

    cedar_id: str
    id_annotation: str
    message: str


def parse_policies(text: str) -> PolicySet:
    """Parse Cedar policy text; raise ``ValueError`` with cedar's message on a syntax error."""
    return PolicySet.from_str(text)


def combine(policies: Mapping[str, ParsedPolicy]) -> PolicySet:
    """One set of the given parsed policies, each under its key as cedar id; nothing is re-parsed."""
    nodes = {new_id: dataclasses.replace(policy.node, id=new_id) for new_id, policy in policies.items()}
    tree = pst.PolicySet(templates=pst.FrozenMap(), static_policies=pst.FrozenMap(nodes), template_links=())
    return PolicySet.from_pst(tree)


def parse_schema(text: str) -> Schema:
    """Parse a Cedar schema (human-readable syntax); raise ``ValueError`` on an invalid one."""
    return Schema.from_str(text)


def policies_of(policy_set: PolicySet) -> list[ParsedPolicy]:
    """Every static policy of the set, in the order written; templates are refused."""
    tree = policy_set.to_pst()
    if tree.templates:
        names = ", ".join(sorted(tree.templates))
        raise ValueError(f"policy templates are not supported ({names})")
    return [
        ParsedPolicy(
            cedar_id=cedar_id,
            effect=_effect(policy.effect),
            annotations=dict(policy.annotations),
            node=policy,
        )
        for cedar_id, policy in sorted(tree.static_policies.items(), key=lambda item: _position(item[0]))
    ]


def _position(cedar_id: str) -> tuple[int, str]:
    """Text order of a freshly parsed set: ``policy2`` before ``policy10``."""
    match = _POSITIONAL_ID.fullmatch(cedar_id)
    return (int(match.group(1)), "") if match else (-1, cedar_id)


def _effect(value: object) -> Effect:
    if value == "permit":
        return "permit"
    if value == "forbid":
        return "forbid"
    raise ValueError(f"unknown policy effect {value!r}")


def validate(policies_text: str, schema: Schema) -> list[ValidationProblem]:
    """Type-check the policies against the schema; an empty list means they are valid."""
    result = cedarpy.validate_policies(policies_text, schema)
    if result.validation_passed:
        return []
    annotations: dict[str, str] = dict(result.id_annotations_by_policy_id)
    return [
        ValidationProblem(
            cedar_id=problem.policy_id,
            id_annotation=annotations.get(problem.policy_id, ""),
            message=problem.error,
        )
        for problem in result.errors
    ]


def authorize(
    *,
    policies: PolicySet,
    schema: Schema,
    principal: Mapping[str, str],
    action: Mapping[str, str],
    resource: Mapping[str, str],
    context: Mapping[str, Any],
    entities_json: str,
) -> Answer:
    """Evaluate one request against the parsed set, validating it against the parsed schema.

    ``principal``, ``action`` and ``resource`` are ``{"type": ..., "id": ...}`` uids;
    ``entities_json`` is the Cedar JSON entity list the request refers to.
    """
    request = {
        "principal": dict(principal),
        "action": dict(action),
        "resource": dict(resource),
        "context": dict(context),
    }
    result = cedarpy.is_authorized(request, policies, entities_json, schema=schema)
    verdict: Verdict = "Allow" if result.allowed else _verdict(result.decision.value)
    return Answer(
        verdict=verdict,
        determining=tuple(str(reason) for reason in result.diagnostics.reasons),
        errors=tuple(str(error) for error in result.diagnostics.errors),
    )


def _verdict(value: str) -> Verdict:
    return "Deny" if value == "Deny" else "NoDecision"


def to_json(value: Any) -> str:
    """JSON for cedar: sets and tuples become lists (sets sorted, so the text is stable)."""
    return json.dumps(value, default=_json_default, ensure_ascii=False)


def _json_default(value: object) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot pass a {type(value).__name__} to cedar")


def syntax_error_line(text: str, parse: Callable[[str], object]) -> int | None:
    """The 1-based line where ``parse`` first fails on ``text``, or ``None`` if it does not fail.

    Cedar's parser reports no positions. A parser fails on the first bad token whatever follows
    it, so the first prefix of whole lines that fails with anything but "unexpected end of
    input" ends on the bad line; if every prefix only runs out of input, the error is at the end.
    """
    lines = text.splitlines()
    for count in range(1, len(lines) + 1):
        try:
            parse("\n".join(lines[:count]))
        except ValueError as error:
            if _END_OF_INPUT not in str(error):
                return _refine_unresolved_type(str(error), lines) or count
    try:
        parse(text)
    except ValueError as error:
        return _refine_unresolved_type(str(error), lines) or max(len(lines), 1)
    return None


def _refine_unresolved_type(message: str, lines: Sequence[str]) -> int | None:
    """A schema naming an unknown type fails only once complete: point at the type's first use."""
    match = _UNRESOLVED_TYPE.search(message)
    if match is None:
        return None
    name = re.compile(rf"(?<![\w:]){re.escape(match.group(1))}(?![\w:])")
    for number, line in enumerate(lines, start=1):
        if name.search(line.split("//", 1)[0]):
            return number
    return None
