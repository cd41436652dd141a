"""The policy engine in Python: loading (and naming the file and line of what is broken),
refusing malformed requests as bad input, failing closed, and the shape of its decisions.

What the shipped policies decide is specified in ``policies/tests/test_cedar_policies.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cloudctl import errors
from cloudctl.model import topology
from cloudctl.policy import engine
from tests.conftest import ROOT

POLICIES = ROOT / "policies"
SCHEMA = POLICIES / "schema.cedarschema"

DEPT_USER = engine.Principal(
    id="alice",
    role="dept-user",
    department="hrss-insurance",
    department_path=("qingdao", "hrss", "hrss-insurance"),
)
SYSADMIN = engine.Principal(id="sam", role="sysadmin")
OWN_REQUEST = engine.Resource(
    type="Request", id="req-1", owner="hrss-insurance", owner_path=("qingdao", "hrss", "hrss-insurance")
)
OTHER_REQUEST = engine.Resource(type="Request", id="req-2", owner="edu", owner_path=("qingdao", "edu"))
QD_A = engine.Resource(
    type="Center", id="qd-a", attributes={"name": "qd-a", "role": "local", "site": "qingdao"}
)
DZ_DR = engine.Resource(
    type="Center", id="dz-dr", attributes={"name": "dz-dr", "role": "dr", "site": "dezhou"}
)
MGMT = engine.Resource(
    type="Center", id="mgmt", attributes={"name": "mgmt", "role": "management", "site": "qingdao"}
)

GOOD_POLICY = """\
@id("anyone-reads-requests")
@reason("a test policy")
permit (principal, action == Cloudctl::Action::"request.read", resource);
"""


@pytest.fixture(scope="module")
def shipped() -> engine.PolicyEngine:
    return engine.PolicyEngine.load(POLICIES)


def policy_dir(tmp_path: Path, files: dict[str, str], *, schema: str | None = None) -> Path:
    """A policy directory with the shipped schema (or ``schema``) and the given ``*.cedar`` files."""
    directory = tmp_path / "policies"
    directory.mkdir()
    if schema is None:
        shutil.copy(SCHEMA, directory / engine.SCHEMA_FILE)
    else:
        (directory / engine.SCHEMA_FILE).write_text(schema, encoding="utf-8")
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def refused_load(directory: Path) -> errors.InvalidInput:
    with pytest.raises(errors.InvalidInput) as caught:
        engine.PolicyEngine.load(directory)
    return caught.value


# --- loading ------------------------------------------------------------------------------------


def test_load_reads_the_schema_and_every_policy_file(shipped: engine.PolicyEngine) -> None:
    assert shipped.files[0] == POLICIES / engine.SCHEMA_FILE
    assert set(shipped.files[1:]) == set(POLICIES.glob("*.cedar"))


def test_loaded_policies_know_their_file_and_line(shipped: engine.PolicyEngine) -> None:
    policy = shipped.policies["audit-immutable"]

    lines = policy.file.read_text(encoding="utf-8").splitlines()
    assert policy.file.name == "separation.cedar"
    assert lines[policy.line - 1].startswith('@id("audit-immutable")')
    assert policy.effect == "forbid"


def test_a_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    broken = GOOD_POLICY + '\n@id("broken")\n@reason("x")\npermit (principal, action == , resource);\n'
    directory = policy_dir(tmp_path, {"a.cedar": broken})

    error = refused_load(directory)

    assert error.field == f"{directory / 'a.cedar'}:7"
    assert "unexpected token" in error.reason


def test_a_syntax_error_in_a_later_file_names_that_file(tmp_path: Path) -> None:
    directory = policy_dir(
        tmp_path, {"a.cedar": GOOD_POLICY, "b.cedar": "// fine so far\npermit (principal\n"}
    )

    error = refused_load(directory)

    assert error.field == f"{directory / 'b.cedar'}:2"
    assert "end of input" in error.reason


def test_a_broken_schema_names_the_file_and_line(tmp_path: Path) -> None:
    schema = SCHEMA.read_text(encoding="utf-8").replace("role: String,", "role: Strin,", 1)
    directory = policy_dir(tmp_path, {"a.cedar": GOOD_POLICY}, schema=schema)

    error = refused_load(directory)

    line = schema.splitlines().index("    role: Strin,") + 1
    assert error.field == f"{directory / engine.SCHEMA_FILE}:{line}"
    assert "Strin" in error.reason


def test_a_policy_without_an_id_is_refused_with_its_line(tmp_path: Path) -> None:
    anonymous = GOOD_POLICY + "\n// no id here\npermit (principal, action, resource);\n"
    directory = policy_dir(tmp_path, {"a.cedar": anonymous})

    error = refused_load(directory)

    assert error.field == f"{directory / 'a.cedar'}:6"
    assert "@id" in error.reason


def test_a_policy_without_a_reason_is_refused(tmp_path: Path) -> None:
    directory = policy_dir(tmp_path, {"a.cedar": '@id("terse")\npermit (principal, action, resource);\n'})

    error = refused_load(directory)

    assert error.field == f"{directory / 'a.cedar'}:1"
    assert "@reason" in error.reason


def test_a_duplicate_id_across_files_names_both_places(tmp_path: Path) -> None:
    directory = policy_dir(tmp_path, {"a.cedar": GOOD_POLICY, "b.cedar": "\n" + GOOD_POLICY})

    error = refused_load(directory)

    assert error.field == f"{directory / 'b.cedar'}:2"
    assert f"{directory / 'a.cedar'}:1" in error.reason


def test_a_duplicate_id_in_one_file_names_the_second_one(tmp_path: Path) -> None:
    directory = policy_dir(
        tmp_path, {"a.cedar": GOOD_POLICY + "\n" + GOOD_POLICY.replace("permit", "forbid")}
    )

    error = refused_load(directory)

    assert error.field == f"{directory / 'a.cedar'}:5"
    assert "duplicate @id 'anyone-reads-requests'" in error.reason


def test_a_policy_that_does_not_match_the_schema_names_its_id_and_line(tmp_path: Path) -> None:
    wrong = GOOD_POLICY + (
        '\n@id("reads-a-ghost")\n@reason("x")\n'
        'permit (principal, action == Cloudctl::Action::"request.read", resource) when { resource.ghost };\n'
    )
    directory = policy_dir(tmp_path, {"a.cedar": wrong})

    error = refused_load(directory)

    assert error.field == f"{directory / 'a.cedar'}:5"
    assert "`reads-a-ghost`" in error.reason
    assert "ghost" in error.reason


def test_a_schema_without_an_action_cloudctl_uses_is_refused(tmp_path: Path) -> None:
    schema = SCHEMA.read_text(encoding="utf-8").replace(', "drill.run"', "", 1)
    directory = policy_dir(tmp_path, {"a.cedar": GOOD_POLICY}, schema=schema)

    error = refused_load(directory)

    assert error.field == str(directory / engine.SCHEMA_FILE)
    assert "drill.run" in error.reason


def test_a_directory_without_policies_is_refused(tmp_path: Path) -> None:
    directory = policy_dir(tmp_path, {})

    error = refused_load(directory)

    assert error.field == str(directory)


def test_a_missing_schema_is_refused(tmp_path: Path) -> None:
    directory = policy_dir(tmp_path, {"a.cedar": GOOD_POLICY})
    (directory / engine.SCHEMA_FILE).unlink()

    error = refused_load(directory)

    assert error.field == "policies"
    assert error.reason == f"no such file {str(directory / engine.SCHEMA_FILE)!r}"


def test_the_digest_is_of_the_files_read_not_of_where_they_lie(tmp_path: Path) -> None:
    for name in ("one", "copy", "renamed", "changed"):
        (tmp_path / name).mkdir()
    one = policy_dir(tmp_path / "one", {"a.cedar": GOOD_POLICY})
    copy = policy_dir(tmp_path / "copy", {"a.cedar": GOOD_POLICY})
    renamed = policy_dir(tmp_path / "renamed", {"b.cedar": GOOD_POLICY})
    changed = policy_dir(tmp_path / "changed", {"a.cedar": GOOD_POLICY + "\n// reviewed\n"})

    digests = [engine.PolicyEngine.load(d).digest for d in (one, copy, renamed, changed)]

    assert digests[0] == digests[1]
    assert len({digests[0], digests[2], digests[3]}) == 3
    assert all(len(d) == 64 and int(d, 16) >= 0 for d in digests)


def test_a_missing_directory_is_refused_naming_where_it_was_looked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    relative = refused_load(Path("policies"))
    absolute = refused_load(tmp_path / "elsewhere")

    assert relative.field == absolute.field == "policies"
    assert relative.reason == f"no directory of Cedar policies at 'policies' (relative to {str(tmp_path)!r})"
    assert absolute.reason == f"no directory of Cedar policies at {str(tmp_path / 'elsewhere')!r}"


# --- malformed requests are bad input ------------------------------------------------------


def test_an_unknown_action_is_bad_input_naming_action(shipped: engine.PolicyEngine) -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        shipped.decide(principal=DEPT_USER, action="request.steal", resource=OWN_REQUEST)

    assert caught.value.field == "action"
    assert "request.steal" in caught.value.reason
    assert caught.value.exit_code == 2


def test_an_unknown_role_is_bad_input(shipped: engine.PolicyEngine) -> None:
    root = engine.Principal(id="root", role="root")

    with pytest.raises(errors.InvalidInput) as caught:
        shipped.decide(principal=root, action="request.read", resource=OWN_REQUEST)

    assert caught.value.field == "principal.role"


def test_a_department_role_needs_a_department(shipped: engine.PolicyEngine) -> None:
    homeless = engine.Principal(id="x", role="dept-user")

    with pytest.raises(errors.InvalidInput) as caught:
        shipped.decide(principal=homeless, action="request.read", resource=OWN_REQUEST)

    assert caught.value.field == "principal.department"


def test_a_resource_of_the_wrong_type_for_the_action_is_bad_input(shipped: engine.PolicyEngine) -> None:
    workload = engine.Resource(type="Workload", id="w", owner="hrss-insurance")

    with pytest.raises(errors.InvalidInput) as caught:
        shipped.decide(principal=DEPT_USER, action="request.read", resource=workload)

    assert caught.value.field == "resource.type"


def test_an_undeclared_resource_type_is_bad_input(shipped: engine.PolicyEngine) -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        shipped.decide(
            principal=SYSADMIN, action="center.read", resource=engine.Resource(type="Rack", id="r")
        )

    assert caught.value.field == "resource.type"


def test_a_missing_context_attribute_is_named(shipped: engine.PolicyEngine) -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        shipped.decide(principal=DEPT_USER, action="placement.place", resource=QD_A, context={"tier": "gold"})

    assert caught.value.field == "context.data_class"


def test_a_missing_resource_attribute_is_named_without_echoing_the_entities(
    shipped: engine.PolicyEngine,
) -> None:
    bare_center = engine.Resource(type="Center", id="qd-a", attributes={"name": "qd-a", "site": "qingdao"})

    with pytest.raises(errors.InvalidInput) as caught:
        shipped.decide(principal=SYSADMIN, action="center.read", resource=bare_center)

    assert caught.value.field == "resource.role"
    assert "failed to parse entities" not in caught.value.reason


# --- decisions ----------------------------------------------------------------------------


def test_an_allowed_decision_names_the_permits(shipped: engine.PolicyEngine) -> None:
    decision = shipped.decide(principal=DEPT_USER, action="request.read", resource=OWN_REQUEST)

    assert decision == engine.Decision(
        allowed=True, policy_ids=("dept-read",), reasons=(shipped.policies["dept-read"].reason,)
    )
    assert decision.one_line() == f"allowed by dept-read ({shipped.policies['dept-read'].reason})"


def test_a_forbid_denial_names_the_forbid_and_its_reason(shipped: engine.PolicyEngine) -> None:
    decision = shipped.decide(principal=DEPT_USER, action="request.read", resource=OTHER_REQUEST)

    assert decision.one_line() == f"denied by dept-isolation ({shipped.policies['dept-isolation'].reason})"


def test_a_default_denial_names_no_policy(shipped: engine.PolicyEngine) -> None:
    decision = shipped.decide(principal=SYSADMIN, action="request.cancel", resource=OWN_REQUEST)

    assert decision == engine.Decision(allowed=False, policy_ids=(), reasons=("no policy permits",))
    assert decision.one_line() == "denied: no policy permits"


def test_require_returns_the_decision_when_allowed(shipped: engine.PolicyEngine) -> None:
    decision = shipped.require(principal=SYSADMIN, action="request.approve", resource=OWN_REQUEST)

    assert decision.policy_ids == ("sysadmin-operate",)


def test_require_raises_policy_denied_naming_the_action_and_policy(shipped: engine.PolicyEngine) -> None:
    with pytest.raises(errors.PolicyDenied) as caught:
        shipped.require(principal=DEPT_USER, action="request.read", resource=OTHER_REQUEST)

    denied = caught.value
    assert isinstance(denied, errors.InvalidInput)
    assert denied.exit_code == 2
    assert denied.field == "request.read"
    assert denied.policy_ids == ("dept-isolation",)
    assert denied.decision.allowed is False
    assert str(denied).startswith("request.read: denied by dept-isolation (")


def test_a_policy_that_fails_to_evaluate_denies(tmp_path: Path) -> None:
    overflowing = GOOD_POLICY + (
        '\n@id("overflows")\n@reason("adds past the largest Long")\n'
        'forbid (principal, action == Cloudctl::Action::"request.read", resource)\n'
        "when { resource.owner_path.contains(principal.department) && "
        "9223372036854775807 + 1 > 0 };\n"
    )
    policies = engine.PolicyEngine.load(policy_dir(tmp_path, {"a.cedar": overflowing}))

    decision = policies.decide(principal=DEPT_USER, action="request.read", resource=OWN_REQUEST)

    assert decision.allowed is False
    assert decision.policy_ids == ("overflows",)
    assert decision.reasons[0].startswith("policy evaluation failed:")
    assert "`overflows`" in decision.reasons[0]


# --- placement helpers ----------------------------------------------------------------------


def test_allowed_centers_keeps_the_given_order(shipped: engine.PolicyEngine) -> None:
    allowed = shipped.allowed_centers(
        principal=DEPT_USER, data_class="secret", tier="gold", centers=[DZ_DR, MGMT, QD_A]
    )

    assert allowed == [QD_A]


def test_require_placement_refuses_a_tier_whose_dr_copy_is_not_allowed(shipped: engine.PolicyEngine) -> None:
    with pytest.raises(errors.PolicyDenied) as caught:
        shipped.require_placement(
            principal=DEPT_USER, data_class="secret", tier="silver", centers=[QD_A, DZ_DR]
        )

    assert caught.value.field == "placement.place"
    assert caught.value.policy_ids == ("placement-secret-home-city",)
    assert "center dz-dr" in caught.value.reason


def test_require_placement_accepts_a_tier_whose_centers_are_all_allowed(shipped: engine.PolicyEngine) -> None:
    shipped.require_placement(
        principal=DEPT_USER, data_class="internal", tier="silver", centers=[QD_A, DZ_DR]
    )


def test_the_data_classes_are_handed_in_and_placement_refuses_others(shipped: engine.PolicyEngine) -> None:
    assert shipped.data_classes == topology.DEFAULT_DATA_CLASSES
    narrow = engine.PolicyEngine.load(POLICIES, data_classes=("internal", "secret"))
    assert narrow.data_classes == ("internal", "secret")
    narrow.require_placement(principal=DEPT_USER, data_class="internal", tier="silver", centers=[QD_A])
    with pytest.raises(errors.InvalidInput) as caught:
        narrow.require_placement(principal=DEPT_USER, data_class="public", tier="silver", centers=[QD_A])

    assert caught.value.one_line() == "data_class: unknown data class 'public' (known: internal, secret)"
