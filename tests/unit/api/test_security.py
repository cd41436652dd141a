"""Attacks on the API: lockout abuse, forwarded addresses, old tokens, oversized and loose input."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.api import app as api_app
from cloudctl.api import hardening
from cloudctl.services import context as ctx_module
from cloudctl.services import identity, orgs
from cloudctl.store import schema

OPS = identity.local_operator("secadmin")
UNKNOWN = f"Bearer cct_{'0' * 16}.{'x' * 43}"


def bearer(ctx: ctx_module.Context, role: str, department: str | None = None) -> tuple[str, dict[str, str]]:
    issued = identity.create_token(ctx, principal=OPS, role=role, department=department)
    return issued.token.id, {"Authorization": f"Bearer {issued.secret}"}


def audit_rows(ctx: ctx_module.Context, action: str) -> list[dict[str, object]]:
    table = schema.audit_records
    with ctx.read() as tx:
        found = tx.execute(sa.select(table).where(table.c.action == action).order_by(table.c.seq))
        return [dict(row._mapping) for row in found]


# --- lockout -----------------------------------------------------------------------------------------


def test_failures_from_one_address_never_lock_out_a_valid_token_there(
    ctx: ctx_module.Context, client: TestClient
) -> None:
    _, hrss = bearer(ctx, "dept-user", "hrss")
    _, sysadmin = bearer(ctx, "sysadmin")
    for _ in range(30):
        client.get("/v1/catalog", headers={"Authorization": UNKNOWN})
    assert client.get("/v1/catalog", headers={"Authorization": UNKNOWN}).status_code == 429
    assert client.get("/v1/catalog", headers=hrss).status_code == 200
    assert client.get("/v1/status", headers=sysadmin).status_code == 200


def test_guessing_the_secret_of_a_known_token_locks_that_token_from_any_address(
    ctx: ctx_module.Context, client: TestClient
) -> None:
    token_id, good = bearer(ctx, "dept-user", "hrss")
    _, other = bearer(ctx, "dept-user", "hrss")
    guess = {"Authorization": f"Bearer cct_{token_id}.{'g' * 43}"}
    trusted = "127.0.0.1/32"
    ctx.settings.trusted_proxies = [ipaddress.ip_network(trusted)]
    with TestClient(api_app.create_app(context=ctx), client=("127.0.0.1", 5000)) as proxied:
        for index in range(5):  # five guesses from five addresses
            forwarded = {**guess, "X-Forwarded-For": f"203.0.113.{index}"}
            proxied.get("/v1/catalog", headers=forwarded)
    locked = client.get("/v1/catalog", headers=good)
    assert locked.status_code == 429
    assert 0 < int(locked.headers["retry-after"]) <= 900
    assert client.get("/v1/catalog", headers=other).status_code == 200
    (lockout,) = audit_rows(ctx, "auth.lockout")
    assert (lockout["target_id"], lockout["detail"]["locked"]) == (token_id, "token")


def test_a_success_does_not_reset_the_count_of_failures(ctx: ctx_module.Context, client: TestClient) -> None:
    token_id, good = bearer(ctx, "dept-user", "hrss")
    guess = {"Authorization": f"Bearer cct_{token_id}.{'g' * 43}"}
    for _ in range(4):
        assert client.get("/v1/catalog", headers=guess).status_code == 401
        assert client.get("/v1/catalog", headers=good).status_code == 200
    assert client.get("/v1/catalog", headers=guess).status_code == 429


def test_a_lockout_ends_after_its_time(
    ctx: ctx_module.Context, client: TestClient, clock: clocks.ManualClock
) -> None:
    token_id, good = bearer(ctx, "dept-user", "hrss")
    for _ in range(5):
        client.get("/v1/catalog", headers={"Authorization": f"Bearer cct_{token_id}.{'g' * 43}"})
    assert client.get("/v1/catalog", headers=good).status_code == 429
    clock.advance(ctx.settings.lockout_s)
    assert client.get("/v1/catalog", headers=good).status_code == 200


def test_x_forwarded_for_is_ignored_from_an_untrusted_peer(
    ctx: ctx_module.Context, client: TestClient
) -> None:
    for index in range(5):  # rotating the header from an untrusted peer gains nothing
        client.get(
            "/v1/catalog", headers={"Authorization": UNKNOWN, "X-Forwarded-For": f"198.51.100.{index}"}
        )
    refused = client.get(
        "/v1/catalog", headers={"Authorization": UNKNOWN, "X-Forwarded-For": "198.51.100.99"}
    )
    assert refused.status_code == 429
    (first,) = [r for r in audit_rows(ctx, "auth.authenticate") if not r["detail"].get("aggregated")][:1]
    assert first["source"] == "testclient"


def test_the_source_behind_a_trusted_proxy_is_the_nearest_untrusted_hop() -> None:
    trusted = [ipaddress.ip_network("10.0.0.0/8")]
    assert hardening.source_address("10.1.1.1", ["203.0.113.7, 10.2.2.2"], trusted) == "203.0.113.7"
    assert hardening.source_address("10.1.1.1", ["1.1.1.1, 203.0.113.7"], trusted) == "203.0.113.7"
    assert hardening.source_address("192.0.2.1", ["203.0.113.7"], trusted) == "192.0.2.1"
    assert hardening.source_address("10.1.1.1", ["not-an-ip"], trusted) == "10.1.1.1"
    assert hardening.source_address("10.1.1.1", [], []) == "10.1.1.1"


def test_trusted_proxies_are_read_comma_separated_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from cloudctl import settings as settings_module

    monkeypatch.setenv("CLOUDCTL_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1")
    parsed = settings_module.Settings().trusted_proxies
    assert [str(n) for n in parsed] == ["10.0.0.0/8", "192.0.2.1/32"]
    monkeypatch.setenv("CLOUDCTL_TRUSTED_PROXIES", "proxy.example")
    with pytest.raises(errors.InvalidInput) as bad:
        settings_module.Settings()
    assert bad.value.field is not None and bad.value.field.startswith("trusted_proxies")
    monkeypatch.delenv("CLOUDCTL_TRUSTED_PROXIES")
    assert settings_module.Settings().trusted_proxies == []


def test_failed_authentications_are_audited_bounded_and_aggregated(
    ctx: ctx_module.Context, client: TestClient, clock: clocks.ManualClock
) -> None:
    ctx.settings.lockout_failures = 1000
    huge = {"Authorization": "Bearer cct_" + "z" * 12_000 + ".x"}
    for _ in range(30):
        assert client.get("/v1/catalog", headers=huge).status_code == 401
    rows = audit_rows(ctx, "auth.authenticate")
    assert len(rows) == 1
    assert (rows[0]["target_id"], rows[0]["detail"]["reason"]) == ("-", "malformed bearer token")
    clock.advance(ctx.settings.auth_audit_aggregate_s)
    assert identity.flush_failed_authentications(ctx) == 1
    summary = audit_rows(ctx, "auth.authenticate")[-1]
    assert (summary["detail"]["aggregated"], summary["detail"]["attempts"]) == (True, 29)
    assert summary["request_id"] == rows[0]["request_id"]


# --- tokens die with their department ---------------------------------------------------------------


def test_deleting_a_department_revokes_its_tokens_and_a_new_one_inherits_none(
    ctx: ctx_module.Context, client: TestClient, clock: clocks.ManualClock
) -> None:
    orgs.create_node(
        ctx, node_id="temp-office", display_name="临时办公室", parent="shinan", kind="department"
    )
    token_id, headers = bearer(ctx, "dept-admin", "temp-office")
    assert client.get("/v1/catalog", headers=headers).status_code == 200
    orgs.delete_node(ctx, "temp-office")
    with ctx.read() as tx:  # checked on the raw table
        revoked_at = tx.execute(
            sa.select(schema.tokens.c.revoked_at).where(schema.tokens.c.id == token_id)
        ).scalar()
    assert revoked_at is not None
    listed = {t.id: t for t in identity.list_tokens(ctx, principal=OPS, include_revoked=True)}
    assert listed[token_id].revoked_at is not None
    orgs.create_node(
        ctx, node_id="temp-office", display_name="另一个办公室", parent="laoshan", kind="department"
    )
    refused = client.get("/v1/catalog", headers=headers)
    assert (refused.status_code, refused.json()["detail"]) == (401, "authorization: revoked token")
    (deleted,) = audit_rows(ctx, "org.delete")
    assert deleted["detail"]["tokens_revoked"] == [token_id]


def test_a_token_of_a_department_deleted_before_revocation_existed_does_not_work(
    ctx: ctx_module.Context, client: TestClient, clock: clocks.ManualClock
) -> None:
    """A database from before: the node went away with its token left live; a newer node of
    the same id is younger than the token, so the token is refused."""
    orgs.create_node(ctx, node_id="old-office", display_name="旧办公室", parent="shinan", kind="department")
    _token_id, headers = bearer(ctx, "dept-admin", "old-office")
    with ctx.transaction() as tx:
        tx.execute(schema.tokens.update().values(revoked_at=None))
        tx.execute(schema.quota_counters.delete().where(schema.quota_counters.c.node_id == "old-office"))
        tx.execute(schema.quota_limits.delete().where(schema.quota_limits.c.node_id == "old-office"))
        tx.execute(schema.org_nodes.delete().where(schema.org_nodes.c.id == "old-office"))
    clock.advance(1)
    orgs.create_node(ctx, node_id="old-office", display_name="新办公室", parent="laoshan", kind="department")
    assert client.get("/v1/catalog", headers=headers).json()["detail"] == "authorization: revoked token"


def test_token_ids_are_never_issued_twice(ctx: ctx_module.Context) -> None:
    ids = {identity.create_token(ctx, principal=OPS, role="auditor").token.id for _ in range(20)}
    assert len(ids) == 20
    assert all(identity.TOKEN_ID.fullmatch(token_id) for token_id in ids)


# --- HTTP hardening -----------------------------------------------------------------------------------


def order(**extra: object) -> dict[str, object]:
    return {"offering": "vm.small", "count": 1, "tier": "bronze", **extra}


def test_a_body_over_the_limit_is_413_unread(ctx: ctx_module.Context, client: TestClient) -> None:
    _, hrss = bearer(ctx, "dept-admin", "hrss")
    big = b'{"offering": "vm.small", "tier": "bronze", "name": "' + b"x" * (1024 * 1024) + b'"}'
    response = client.post("/v1/requests", content=big, headers={**hrss, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
        yield b'{"name": "'
        for _ in range(20):
            yield b"y" * 65536
        yield b'"}'

    streamed = client.post(
        "/v1/requests", content=chunks(), headers={**hrss, "Content-Type": "application/json"}
    )
    assert streamed.status_code == 413


def test_too_many_or_too_large_headers_are_431(ctx: ctx_module.Context, client: TestClient) -> None:
    many = {f"X-Extra-{index}": "1" for index in range(100)}
    assert client.get("/healthz", headers=many).status_code == 431
    assert client.get("/healthz", headers={"X-Big": "b" * 20_000}).status_code == 431


@pytest.mark.parametrize(
    ("sent", "kept"),
    [("trace-42", True), ("a" * 64, True), ("a" * 65, False), ("bad id\x7f", False), ("<script>", False)],
)
def test_a_request_id_is_kept_only_when_short_and_plain(
    ctx: ctx_module.Context, client: TestClient, sent: str, kept: bool
) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": sent})
    answered = response.headers["x-request-id"]
    assert (answered == sent) is kept
    assert hardening.REQUEST_ID.fullmatch(answered)


def test_a_long_request_id_never_reaches_the_audit_log(ctx: ctx_module.Context, client: TestClient) -> None:
    _, hrss = bearer(ctx, "dept-admin", "hrss")
    client.post("/v1/requests", json=order(tier="nosuch"), headers={**hrss, "X-Request-ID": "r" * 60_000})
    assert all(len(str(row["request_id"])) <= 64 for row in audit_rows(ctx, "request.create"))


def test_an_id_in_a_path_longer_than_any_id_is_422_naming_it_and_never_echoed_whole(
    ctx: ctx_module.Context, client: TestClient
) -> None:
    """Every ``{id}`` of every operation: an 8 KB id is no id (and no audit record carries it)."""
    _, sysadmin = bearer(ctx, "sysadmin")
    long = "a" * 8_000
    spec = client.app.openapi()  # type: ignore[attr-defined]
    walked = 0
    for path, methods in spec["paths"].items():
        names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
        for name in names:
            url = path
            for other in names:
                url = url.replace(f"{{{other}}}", long if other == name else "x")
            for method in methods:
                response = client.request(method.upper(), url, headers=sysadmin, json={})
                assert response.status_code == 422, (method, path, response.status_code)
                assert response.json()["field"] == name, (method, path, response.json())
                assert long not in response.text
                walked += 1
    assert walked >= 20
    with ctx.read() as tx:
        targets = tx.execute(sa.select(schema.audit_records.c.target_id)).scalars().all()
    assert all(len(str(target)) <= 64 for target in targets)


def test_a_query_parameter_longer_than_any_value_is_422_naming_it_and_never_echoed_whole(
    ctx: ctx_module.Context, client: TestClient
) -> None:
    """Every text query parameter of every operation is bounded: an 8 KB filter is no node, state,
    tier, action or cursor, and is refused before anything reads it."""
    _, auditor = bearer(ctx, "auditor")
    _, sysadmin = bearer(ctx, "sysadmin")
    long = "a" * 8_000
    spec = client.app.openapi()  # type: ignore[attr-defined]
    walked = 0
    for path, methods in spec["paths"].items():
        if "{" in path:
            continue
        for method, operation in methods.items():
            for parameter in operation.get("parameters", []):
                schema_ = parameter.get("schema", {})
                kinds = [schema_, *schema_.get("anyOf", [])]
                if parameter["in"] != "query" or not any(k.get("type") == "string" for k in kinds):
                    continue
                assert any("maxLength" in k or "enum" in k for k in kinds), (method, path, parameter["name"])
                headers = auditor if path.startswith("/v1/audit") else sysadmin
                response = client.request(
                    method.upper(), path, params={parameter["name"]: long}, headers=headers, json={}
                )
                assert response.status_code == 422, (method, path, parameter["name"], response.status_code)
                assert response.json()["field"] == parameter["name"], (method, path, response.json())
                assert long not in response.text
                walked += 1
    assert walked >= 15


def test_a_quota_update_naming_more_resources_than_there_are_is_422(
    ctx: ctx_module.Context, client: TestClient
) -> None:
    _, sysadmin = bearer(ctx, "sysadmin")
    many = {f"r{n}": 1 for n in range(1_000)}
    response = client.put("/v1/quota/hrss", json={"center": "qd-a", "limits": many}, headers=sysadmin)
    assert (response.status_code, response.json()["field"]) == (422, "limits")
    long_name = {"v" * 8_000: 1}
    response = client.put("/v1/quota/hrss", json={"center": "qd-a", "limits": long_name}, headers=sysadmin)
    assert response.status_code == 422 and "v" * 8_000 not in response.text


def test_an_unknown_body_field_is_422_naming_it(ctx: ctx_module.Context, client: TestClient) -> None:
    _, hrss = bearer(ctx, "dept-admin", "hrss")
    response = client.post("/v1/requests", json=order(colour="red"), headers=hrss)
    assert response.status_code == 422
    assert response.json()["field"] == "colour"


@pytest.mark.parametrize("count", ["2", True, 2.5])
def test_a_count_must_be_a_json_integer(ctx: ctx_module.Context, client: TestClient, count: object) -> None:
    _, hrss = bearer(ctx, "dept-admin", "hrss")
    response = client.post("/v1/requests", json=order(count=count), headers=hrss)
    assert (response.status_code, response.json()["field"]) == (422, "count")


def test_deep_nesting_is_a_problem_not_a_crash(ctx: ctx_module.Context, client: TestClient) -> None:
    _, hrss = bearer(ctx, "dept-admin", "hrss")
    deep = b"[" * 100_000 + b"]" * 100_000
    response = client.post("/v1/requests", content=deep, headers={**hrss, "Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == "body"


def test_an_unknown_route_is_a_problem(client: TestClient) -> None:
    response = client.get("/v1/nosuch")
    assert (response.status_code, response.headers["content-type"]) == (404, "application/problem+json")


def test_a_store_outage_is_503_with_retry_after_and_no_internals(
    ctx: ctx_module.Context, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, hrss = bearer(ctx, "dept-admin", "hrss")

    def down(*_args: object, **_kwargs: object) -> None:
        raise errors.BackendUnavailable(
            "the store did not answer: connection to server at 10.9.8.7, port 6543 failed: FATAL",
            field="database",
        )

    monkeypatch.setattr(ctx.store, "read", down)
    response = client.get("/v1/catalog", headers=hrss)
    assert response.status_code == 503
    assert response.headers["retry-after"] == str(ctx.settings.unavailable_retry_after_s)
    assert not any(word in response.text for word in ("10.9.8.7", "6543", "FATAL", "server at"))


def test_a_foreign_id_and_a_missing_id_answer_the_same_404(
    ctx: ctx_module.Context, client: TestClient
) -> None:
    _, hrss = bearer(ctx, "dept-admin", "hrss")
    _, samr = bearer(ctx, "dept-admin", "samr")
    created = client.post("/v1/requests", json=order(), headers=samr).json()
    request_id, workload_id = created["id"], created["workload_id"]

    def same(path: str, foreign: str, missing: str, method: str = "GET") -> None:
        one = client.request(method, path.format(foreign), headers=hrss)
        two = client.request(method, path.format(missing), headers=hrss)
        assert one.status_code == two.status_code == 404, (path, one.text, two.text)
        first = {k: v for k, v in one.json().items() if k != "instance"}
        second = {k: v for k, v in two.json().items() if k != "instance"}
        assert first["detail"].replace(foreign, "ID") == second["detail"].replace(missing, "ID")
        assert first | {"detail": ""} == second | {"detail": ""}

    same("/v1/requests/{}", request_id, "req-nosuch")
    same("/v1/workloads/{}", workload_id, "wl-nosuch")
    same("/v1/requests/{}/cancel", request_id, "req-nosuch", "POST")
    same("/v1/workloads/{}", workload_id, "wl-nosuch", "DELETE")
    same("/v1/quota?department={}", "samr", "nosuch")
    same("/v1/requests?department={}", "samr", "nosuch")
    same("/v1/workloads?department={}", "samr", "nosuch")


# --- input the store or the clock cannot hold ---------------------------------------------------------


@pytest.mark.parametrize("expires_in_s", [1e20, 315_360_001])
def test_a_token_expiry_beyond_ten_years_is_422_and_issues_nothing(
    ctx: ctx_module.Context, client: TestClient, expires_in_s: float
) -> None:
    _, secadmin = bearer(ctx, "secadmin")
    before = client.get("/v1/tokens", headers=secadmin).json()["count"]
    body = {"role": "dept-user", "department": "samr", "expires_in_s": expires_in_s}
    refused = client.post("/v1/tokens", json=body, headers=secadmin)
    assert (refused.status_code, refused.json()["field"]) == (422, "expires_in_s")
    listed = client.get("/v1/tokens", headers=secadmin)
    assert (listed.status_code, listed.json()["count"]) == (200, before)
    with pytest.raises(errors.InvalidInput) as direct:
        identity.create_token(ctx, principal=OPS, role="auditor", expires_in_s=expires_in_s)
    assert direct.value.field == "expires_in_s"


@pytest.mark.parametrize("cursor", ["99999999999999999999999", "9223372036854775808", "\u00b2", "\u0661"])
def test_an_audit_cursor_the_list_never_returned_is_422(
    ctx: ctx_module.Context, client: TestClient, cursor: str
) -> None:
    _, auditor = bearer(ctx, "auditor")
    refused = client.get("/v1/audit", params={"cursor": cursor}, headers=auditor)
    assert (refused.status_code, refused.json()["field"]) == (422, "cursor")


def test_an_audit_export_after_a_seq_the_store_cannot_hold_is_422(
    ctx: ctx_module.Context, client: TestClient
) -> None:
    _, auditor = bearer(ctx, "auditor")
    refused = client.get("/v1/audit/export", params={"after": 2**63}, headers=auditor)
    assert (refused.status_code, refused.json()["field"]) == (422, "after")
    last = client.get("/v1/audit/export", params={"after": 2**63 - 1}, headers=auditor)
    assert (last.status_code, last.text) == (200, "")


@pytest.mark.parametrize(
    ("role", "method", "path", "body", "field"),
    [
        ("dept-admin", "GET", "/v1/requests?cursor=%00", None, "cursor"),
        ("dept-admin", "GET", "/v1/workloads?tier=gold%00", None, "tier"),
        ("dept-admin", "GET", "/v1/requests/req-%00", None, "path"),
        ("auditor", "GET", "/v1/audit?action=request.create%00", None, "action"),
        (
            "sysadmin",
            "POST",
            "/v1/org/nodes",
            {"id": "nul-office", "display_name": "a\x00", "parent": "shinan"},
            "display_name",
        ),
        ("secadmin", "POST", "/v1/tokens", {"role": "auditor", "name": "a\x00b"}, "name"),
        ("dept-admin", "POST", "/v1/requests", order(name="\x00"), "name"),
        (
            "sysadmin",
            "POST",
            "/v1/failover/runs",
            {"from_centers": ["qd-a\x00"], "planned": True},
            "from_centers.0",
        ),
    ],
)
def test_a_nul_character_anywhere_is_422_naming_where_and_changes_nothing(
    ctx: ctx_module.Context,
    client: TestClient,
    role: str,
    method: str,
    path: str,
    body: dict[str, object] | None,
    field: str,
) -> None:
    """No store can hold U+0000 alike (PostgreSQL's text cannot): it is refused at the door."""
    _, headers = bearer(ctx, role, "hrss" if role.startswith("dept-") else None)
    before = audit_rows(ctx, "token.create")
    refused = client.request(method, path, json=body, headers=headers)
    assert (refused.status_code, refused.json()["field"]) == (422, field), refused.text
    assert refused.json()["detail"] == f"{field}: must not contain the NUL character (U+0000)"
    assert audit_rows(ctx, "token.create") == before
    assert "nul-office" not in [node.id for node in orgs.list_nodes(ctx)]


@pytest.mark.parametrize(
    ("role", "path", "body", "field"),
    [
        ("sysadmin", "/v1/failback/runs", '{"to_center": "qd-a\\ud800"}', "to_center"),
        ("sysadmin", "/v1/failover/runs", '{"from_centers": ["\\udfff"], "planned": true}', "from_centers.0"),
        ("dept-admin", "/v1/requests", '{"offering": "vm.small", "name": "\\uDBFF"}', "name"),
        ("secadmin", "/v1/tokens", '{"role": "auditor", "\\ud800": 1}', "body"),
    ],
)
def test_a_lone_surrogate_in_a_body_is_422_naming_where_and_changes_nothing(
    ctx: ctx_module.Context, client: TestClient, role: str, path: str, body: str, field: str
) -> None:
    """No UTF-8 text holds half a surrogate pair: not the store, the audit chain, nor an answer."""
    _, headers = bearer(ctx, role, "hrss" if role.startswith("dept-") else None)
    before = [audit_rows(ctx, action) for action in ("token.create", "failback.run", "failover.run")]
    refused = client.post(
        path, content=body.encode(), headers={**headers, "Content-Type": "application/json"}
    )
    assert (refused.status_code, refused.json()["field"]) == (422, field), refused.text
    assert refused.json()["detail"] == f"{field}: must not contain a lone surrogate (U+D800 to U+DFFF)"
    assert [audit_rows(ctx, action) for action in ("token.create", "failback.run", "failover.run")] == before
    paired = client.post(
        "/v1/failback/runs",
        content=b'{"to_center": "\\ud83d\\ude00"}',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert (paired.status_code, paired.json()["field"]) == (422, "to"), paired.text  # a pair is one character


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"offering": "vm.small", "count": 1', "not valid JSON (Expecting ',' delimiter, at character 35)"),
        (
            b'[{"offering": "vm.small"}]',
            "Input should be a valid dictionary or object to extract fields from",
        ),
        (b"", "Field required"),
    ],
)
def test_a_body_that_is_no_json_object_is_422_naming_the_body(
    ctx: ctx_module.Context, client: TestClient, content: bytes, reason: str
) -> None:
    _, hrss = bearer(ctx, "dept-admin", "hrss")
    headers = {**hrss, "Content-Type": "application/json"}
    refused = client.post("/v1/requests", content=content, headers=headers)
    assert (refused.status_code, refused.json()["field"]) == (422, "body"), refused.text
    assert refused.json()["detail"] == f"body: {reason}"


# --- filters and fields: a refusal names what the caller sent ------------------------------------------


@pytest.mark.parametrize(
    ("role", "path", "status", "field"),
    [
        ("dept-admin", "/v1/requests?state=bogus", 422, "state"),
        ("dept-admin", "/v1/workloads?tier=bogus", 404, "tier"),  # a name, as on /v1/replication/status
    ],
)
def test_a_filter_no_item_can_match_is_refused_naming_it(
    ctx: ctx_module.Context, client: TestClient, role: str, path: str, status: int, field: str
) -> None:
    _, token = bearer(ctx, role, "hrss" if role.startswith("dept") else None)
    refused = client.get(path, headers=token)
    assert (refused.status_code, refused.json()["field"]) == (status, field), refused.text
    assert "bogus" in refused.json()["detail"]
    good = path.replace("bogus", {"state": "ready", "tier": "gold"}[field])
    assert client.get(good, headers=token).status_code == 200


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/replication/points?department=nosuch", "department"),
        ("/v1/replication/status?department=nosuch", "department"),
        ("/v1/org/nodes?under=nosuch", "under"),
    ],
)
def test_an_unknown_id_in_a_query_names_the_parameter(
    ctx: ctx_module.Context, client: TestClient, path: str, field: str
) -> None:
    _, sysadmin = bearer(ctx, "sysadmin")
    refused = client.get(path, headers=sysadmin)
    assert (refused.status_code, refused.json()["field"]) == (404, field), refused.text


def test_an_unknown_preferred_center_is_422_naming_it_like_any_other_center_not_allowed(
    ctx: ctx_module.Context, client: TestClient
) -> None:
    _, hrss = bearer(ctx, "dept-admin", "hrss")
    for center in ("nosuch", "dz-dr"):
        refused = client.post("/v1/requests", json=order(preferred_center=center), headers=hrss)
        assert (refused.status_code, refused.json()["field"]) == (422, "preferred_center"), refused.text
        assert "local" in refused.json()["detail"]
    assert client.get("/v1/requests", headers=hrss).json()["count"] == 0


def test_a_department_revoking_another_departments_token_is_answered_as_for_a_missing_one(
    ctx: ctx_module.Context, client: TestClient
) -> None:
    foreign, _ = bearer(ctx, "dept-user", "samr")
    _, hrss = bearer(ctx, "dept-admin", "hrss")
    one = client.post(f"/v1/tokens/{foreign}/revoke", headers=hrss)
    two = client.post(f"/v1/tokens/{'0' * 16}/revoke", headers=hrss)
    assert one.status_code == two.status_code == 404, (one.text, two.text)
    assert one.json()["detail"].replace(foreign, "ID") == two.json()["detail"].replace("0" * 16, "ID")
    with ctx.read() as tx:
        revoked = tx.execute(
            sa.select(schema.tokens.c.revoked_at).where(schema.tokens.c.id == foreign)
        ).scalar()
    assert revoked is None


@pytest.mark.parametrize("text", ["two\nlines", "tab\there", "bell\x07", "carriage\rreturn", "c1\x85"])
def test_a_name_or_a_reason_with_a_control_character_is_422_and_changes_nothing(
    ctx: ctx_module.Context, client: TestClient, text: str
) -> None:
    _, sysadmin = bearer(ctx, "sysadmin")
    _, secadmin = bearer(ctx, "secadmin")
    _, hrss = bearer(ctx, "dept-admin", "hrss")
    node = {"id": "walk-office", "display_name": text, "parent": "shinan", "kind": "department"}
    refused = client.post("/v1/org/nodes", json=node, headers=sysadmin)
    assert (refused.status_code, refused.json()["field"]) == (422, "name"), refused.text
    assert client.get("/v1/org/nodes/walk-office", headers=sysadmin).status_code == 404
    tokens_before = client.get("/v1/tokens", headers=secadmin).json()["count"]
    token = {"role": "auditor", "name": text}
    refused = client.post("/v1/tokens", json=token, headers=secadmin)
    assert (refused.status_code, refused.json()["field"]) == (422, "name"), refused.text
    assert client.get("/v1/tokens", headers=secadmin).json()["count"] == tokens_before
    big = client.post("/v1/requests", json=order(count=5), headers=hrss).json()
    assert big["state"] == "pending-approval"  # over 4 instances waits for an operator
    refused = client.post(f"/v1/requests/{big['id']}/reject", json={"reason": text}, headers=sysadmin)
    assert (refused.status_code, refused.json()["field"]) == (422, "reason"), refused.text
    assert client.get(f"/v1/requests/{big['id']}", headers=hrss).json()["state"] == "pending-approval"
