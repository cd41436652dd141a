"""No state or role is spelled as a string outside the model: code names the enum member.

The states and roles of ``cloudctl.model`` (``STATE_ENUMS`` below) are ``StrEnum``s, so a
member compares and stores exactly as its value, and a bare ``"ready"`` would still work:
that is the trouble, since a typo or a renamed state then goes unnoticed. This test parses
every ``.py`` file under ``cloudctl/`` outside ``cloudctl/model`` with ``ast`` and reports,
as ``file:line``, each string constant whose value is the value of a member of those enums
*where it is used as a state*, which means any of:

1. an operand of a comparison (``==``, ``!=``, ``in``, ``not in``, ``is``, ``is not``), or an
   element of a tuple, list or set that is such an operand (``w.state in ("ready", "failed")``);
2. the value of a keyword argument whose name says it holds a state (see below), as in
   ``update(tx, state="ready")``;
3. the value of a dict entry whose constant key says it holds a state (``{"state": "ready"}``),
   and the keys of a dict literal whose keys are all state values: a table looked up by a
   state, such as ``{"ready": "green", "failed": "red"}``;
4. the value assigned to a name, attribute or constant subscript that says it holds a state
   (``final_state = "ready"``, ``row["role"] = "primary"``, ``LIVE_STATES = ("ready",)``);
5. the default value of a parameter that says it holds a state (``def f(state="ready")``);
6. what a function whose name says it holds a state returns (``def center_health(): return "up"``);
7. an argument of SQLAlchemy's ``in_``/``not_in``/``notin_`` called on an attribute that says
   it holds a state (``table.c.state.in_(["ready"])``);
8. a module constant spelled as its own value (``READY = "ready"``, ``SYNC, ASYNC = "sync",
   "async"``), which defines a state again outside the model (``NOT_STATES`` names the few
   that are something else, and says what).

A name "says it holds a state" when its last word is ``state``, ``role``, ``mode``,
``health`` or ``protection``, or their plural (``state``, ``link_state``, ``SERVING_ROLES``, ``old.role``).
``status`` is left out on purpose: here it names a backend resource's status or the
readiness answer, which are not model states. In each position a value is looked through
conditional expressions, ``and``/``or``, tuples, lists, sets and calls of
``frozenset``/``set``/``tuple``/``list``.

Not reported, because there the same word is not used as a state: docstrings and other bare
string statements, f-strings, log and error messages (a constant argument of a call that is
none of the above, such as ``log.info("ready")`` or ``errors.Conflict("... ready ...")``),
CLI command and option names, metric label names, and dict keys of dicts that are not
state lookups (``{"id": ..., "deleted": True}``). Migrations are history and keep the strings
they wrote.

The portal's Jinja templates get the same rule for comparisons: a template compares a state
with the enum the page passes (``d.state == DrillRunState.DONE``), never with a quoted
value. A quoted word given to the ``state(...)`` label macro (``state("passed")``) is not a
comparison: it names the label a drill's verdict is shown with.
"""

from __future__ import annotations

import ast
import enum
import re
from collections.abc import Iterator
from pathlib import Path

from cloudctl.model import grants, states

PACKAGE = Path(__file__).resolve().parents[2] / "cloudctl"

STATE_ENUMS: tuple[type[enum.StrEnum], ...] = (
    states.WorkloadState,
    states.PlacementRole,
    states.PlacementState,
    states.StreamState,
    states.StreamMode,
    states.RunState,
    states.DrillRunState,
    states.PointState,
    states.ReplicaRole,
    states.DatabaseRole,
    states.CenterHealth,
    states.LinkState,
    states.Protection,
    grants.GrantState,
)
STATE_VALUES = frozenset(member.value for kind in STATE_ENUMS for member in kind)

NOT_STATES = {
    ("cloudctl/store/leases.py", "LEADER"): "the name of the leader's lease, which no replica role renames",
}
"""Module constants spelled as a state value that are not that state, and why."""

MIGRATIONS = "cloudctl/store/migrations/"
"""A migration is history: it keeps the strings it wrote even if an enum is renamed later."""

_STATE_WORD = re.compile(r"(?:^|_)(?:state|role|mode|health|protection)s?$", re.IGNORECASE)
_COLLECTION_CALLS = frozenset({"frozenset", "set", "tuple", "list"})
_IN_METHODS = frozenset({"in_", "not_in", "notin_"})
_COMPARISONS = (ast.Eq, ast.NotEq, ast.In, ast.NotIn, ast.Is, ast.IsNot)


def _says_state(name: str | None) -> bool:
    return name is not None and _STATE_WORD.search(name) is not None


def _string(node: ast.expr | None) -> ast.Constant | None:
    return node if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _target_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return str(node.slice.value)
    return None


def _values(node: ast.expr | None) -> Iterator[ast.Constant]:
    """The string constants ``node`` evaluates to, looked through the forms the docstring lists."""
    if node is None:
        return
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node
    elif isinstance(node, ast.IfExp):
        yield from _values(node.body)
        yield from _values(node.orelse)
    elif isinstance(node, ast.BoolOp):
        for value in node.values:
            yield from _values(value)
    elif isinstance(node, ast.Tuple | ast.List | ast.Set):
        for element in node.elts:
            yield from _values(element)
    elif isinstance(node, ast.Starred):
        yield from _values(node.value)
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _COLLECTION_CALLS:
        for argument in node.args:
            yield from _values(argument)


def _used_as_state(tree: ast.AST) -> Iterator[ast.Constant]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and all(isinstance(op, _COMPARISONS) for op in node.ops):
            for operand in (node.left, *node.comparators):
                yield from _values(operand)
        elif isinstance(node, ast.keyword) and _says_state(node.arg):
            yield from _values(node.value)
        elif isinstance(node, ast.Dict):
            keys = [_string(key) for key in node.keys]
            for key, value in zip(keys, node.values, strict=True):
                if key is not None and _says_state(key.value):
                    yield from _values(value)
            if keys and all(key is not None and key.value in STATE_VALUES for key in keys):
                yield from (key for key in keys if key is not None)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            yield from _assigned(targets, node.value)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _says_state(node.name):
            for statement in ast.walk(node):
                if isinstance(statement, ast.Return):
                    yield from _values(statement.value)
        elif isinstance(node, ast.arguments):
            positional = [*node.posonlyargs, *node.args]
            with_defaults = positional[len(positional) - len(node.defaults) :]
            for argument, default in zip(with_defaults, node.defaults, strict=True):
                if _says_state(argument.arg):
                    yield from _values(default)
            for argument, kw_default in zip(node.kwonlyargs, node.kw_defaults, strict=True):
                if _says_state(argument.arg):
                    yield from _values(kw_default)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _IN_METHODS
            and _says_state(_target_name(node.func.value))
        ):
            for argument in node.args:
                yield from _values(argument)


def _assigned(targets: list[ast.expr], value: ast.expr | None) -> Iterator[ast.Constant]:
    for target in targets:
        if (
            isinstance(target, ast.Tuple)
            and isinstance(value, ast.Tuple)
            and len(target.elts) == len(value.elts)
        ):
            for name, element in zip(target.elts, value.elts, strict=True):
                yield from _assigned([name], element)
        elif _says_state(_target_name(target)):
            yield from _values(value)


def _redefined_constants(tree: ast.Module, *, path: str) -> Iterator[ast.Constant]:
    """Module constants spelled as their own value (``READY = "ready"``, ``A, B = "a", "b"``)."""
    for statement in tree.body:
        if not isinstance(statement, ast.Assign):
            continue
        for target in statement.targets:
            pairs: list[tuple[ast.expr, ast.expr]] = [(target, statement.value)]
            if isinstance(target, ast.Tuple) and isinstance(statement.value, ast.Tuple):
                pairs = list(zip(target.elts, statement.value.elts, strict=False))
            for name, value in pairs:
                if (
                    isinstance(name, ast.Name)
                    and isinstance(value, ast.Constant)
                    and isinstance(value.value, str)
                    and name.id == value.value.upper().replace("-", "_")
                    and (path, name.id) not in NOT_STATES
                ):
                    yield value


def state_literals(source: str, *, path: str = "<snippet>") -> list[int]:
    """The lines of ``source`` where a string equal to a state or role value is used as one."""
    tree = ast.parse(source)
    found = [*_used_as_state(tree), *_redefined_constants(tree, path=path)]
    return sorted({c.lineno for c in found if c.value in STATE_VALUES})


TEMPLATES = PACKAGE / "api" / "ui" / "templates"
_JINJA_BLOCK = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_JINJA_COMPARISON = re.compile(r"==|!=|\bin\b")
_QUOTED = re.compile(r"""(["'])([^"']*)\1""")


def template_state_literals(source: str) -> list[int]:
    """The lines of a Jinja template where a quoted state value takes part in a comparison."""
    lines = set()
    for block in _JINJA_BLOCK.finditer(source):
        if not _JINJA_COMPARISON.search(block.group()):
            continue
        for quoted in _QUOTED.finditer(block.group()):
            if quoted.group(2) in STATE_VALUES:
                lines.add(source.count("\n", 0, block.start() + quoted.start()) + 1)
    return sorted(lines)


def _checked_files() -> Iterator[tuple[str, Path]]:
    root = PACKAGE.parent
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if relative.startswith(("cloudctl/model/", MIGRATIONS)):
            continue
        yield relative, path


def test_no_module_outside_the_model_spells_a_state_or_role_as_a_string() -> None:
    found = [
        f"{relative}:{line}"
        for relative, path in _checked_files()
        for line in state_literals(path.read_text(encoding="utf-8"), path=relative)
    ]
    assert not found, "state or role literals outside cloudctl/model (use the enum member):\n" + "\n".join(
        found
    )


def test_no_portal_template_compares_a_state_with_a_quoted_value() -> None:
    found = [
        f"{path.relative_to(PACKAGE.parent).as_posix()}:{line}"
        for path in sorted(TEMPLATES.rglob("*.html"))
        for line in template_state_literals(path.read_text(encoding="utf-8"))
    ]
    assert not found, "templates comparing a state with a string (pass the enum):\n" + "\n".join(found)


def test_the_template_checker_reports_a_quoted_state_and_leaves_labels_alone() -> None:
    source = '<p>{{ state("failed") }}</p>\n{% if d.state == "done" %}x{% endif %}\n{{ "a" if b else "c" }}'
    assert template_state_literals(source) == [2]


def test_the_checker_reports_a_state_compared_as_a_string() -> None:
    source = 'def f(w):\n    if w.state == "ready":\n        return 1\n'
    assert state_literals(source) == [2]


def test_the_checker_reports_each_way_a_state_is_written() -> None:
    source = "\n".join(
        [
            'ok = w.role in ("primary", "active")',  # 1 comparison with a tuple
            'update(tx, state="deleting")',  # 2 keyword argument
            'row = {"state": "healthy"}',  # 3 dict value under a state key
            'colour = {"failed": "red"}',  # 4 dict key that is a state
            'final_state = "done" if ok else "failed"',  # 5 assignment, through a conditional
            "def g(*, role='standby'): ...",  # 6 default value
            'q = t.c.state.in_(["ready"])',  # 7 SQL IN
            'READY = "ready"',  # 8 a state constant redefined
            'def center_health(c): return "down"',  # 9 what a state-named function returns
            'SYNC, ASYNC = "sync", "async"',  # 10 state constants redefined together
        ]
    )
    assert state_literals(source) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]


def test_the_checker_leaves_words_that_are_not_states_alone() -> None:
    source = "\n".join(
        [
            '"""The workload is ready."""',
            'log.info("ready")',
            'raise Conflict("run is running", field="state")',
            'app.command("failed")',
            'labels = {"center": "ready"}',
            "x = w.state == states.WorkloadState.READY",
            'row = {"id": "wl-1", "deleted": True}',
            'LEADER = "leader"',
        ]
    )
    assert state_literals(source, path="cloudctl/store/leases.py") == []
