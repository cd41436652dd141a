"""The command line against a management center that misbehaves, and against careless input to
``login`` and ``config``: one line naming the field, the documented exit code, never a traceback."""

from __future__ import annotations

import http.client
import io
import json
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cloudctl import errors
from cloudctl.cli import client, commands_login, contexts, main
from tests.unit.cli.transports import Canned

TOKEN = "cct_0123456789abcdef.secret"


def invoke(*args: str, stdin: str | None = None) -> Any:
    result = CliRunner().invoke(main.app, main.hoist_global_options(list(args)), input=stdin)
    assert not result.exception or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.fixture(autouse=True)
def private_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("CLOUDCTL_API", raising=False)
    monkeypatch.delenv("CLOUDCTL_TOKEN", raising=False)
    return tmp_path / "xdg" / "cloudctl" / "config.yaml"


@pytest.fixture
def answering() -> Iterator[Any]:
    """A loopback server that answers every connection with the given bytes, then closes it."""
    servers: list[socket.socket] = []

    def start(answer: bytes) -> str:
        listener = socket.create_server(("127.0.0.1", 0))
        servers.append(listener)

        def serve() -> None:
            while True:
                try:
                    connection, _ = listener.accept()
                except OSError:
                    return
                with connection:
                    connection.recv(65536)
                    connection.sendall(answer)

        threading.Thread(target=serve, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}"

    yield start
    for listener in servers:
        listener.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"HELLO WORLD\r\n\r\n",  # not HTTP
        b"\x00\x01\x02",
        b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"a":',
        b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000 + b"\r\n\r\n",  # a header line past 64 KB
    ],
    ids=["not-http", "binary", "cut-off-body", "huge-header"],
)
def test_an_answer_that_is_not_http_is_one_line_and_exit_3(
    answer: bytes, answering: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = answering(answer)
    monkeypatch.setenv("CLOUDCTL_API", api)
    monkeypatch.setenv("CLOUDCTL_TOKEN", TOKEN)
    result = invoke("centers", "list", "-o", "json")
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr == f"error: api: {api} did not answer as an HTTP server\n"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:99999", "Port out of range"),
        ("http://127.0.0.1:abc", "Port could not be cast"),
        ("http://[::1", "Invalid IPv6 URL"),
        ("http://127.0.0.1:0", "port 0"),
        ("http://127.0.0.1:8080/\x1b[31m", "control or non-ASCII"),
        ("http://127.0.0.1:8080/a b", "spaces"),
        ("http://127.0.0.1:8080/" + "a" * 65536, "longer than 2048"),
    ],
)
def test_login_refuses_an_api_url_that_cannot_be_requested(
    url: str, reason: str, private_config: Path
) -> None:
    result = invoke("login", "--api", url, stdin=TOKEN + "\n")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: api: ") and reason in result.stderr
    assert len(result.stderr.splitlines()) == 1 and len(result.stderr) < 300
    assert "\x1b" not in result.stderr
    assert not private_config.exists()


def test_an_api_url_from_the_environment_is_checked_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDCTL_API", "http://127.0.0.1:70000")
    monkeypatch.setenv("CLOUDCTL_TOKEN", TOKEN)
    result = invoke("centers", "list")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: api: 'http://127.0.0.1:70000' is not a URL: Port out of range")


class _Whoami:
    """A transport whose API accepts every token as a sysadmin's."""

    def request(
        self, method: str, target: str, *, headers: dict[str, str], body: bytes | None
    ) -> client.Reply:
        answer = {"id": "token:0123456789abcdef", "role": "sysadmin", "department": None}
        return client.Reply(status=200, headers={}, body=json.dumps(answer).encode())

    def close(self) -> None:
        pass


@pytest.mark.parametrize("name", ["[/]", "[bold red]ops", "a\nb", "ops\x1b[2J", "", "a" * 65536, "two words"])
def test_login_refuses_a_context_name_that_is_not_one_word(
    name: str, monkeypatch: pytest.MonkeyPatch, private_config: Path
) -> None:
    monkeypatch.setattr(client, "open_transport", lambda api: _Whoami())
    result = invoke("login", "--api", "http://127.0.0.1:8080", "--name", name, stdin=TOKEN + "\n")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: name: ") and "is not a context name" in result.stderr
    assert len(result.stderr.splitlines()) == 1 and len(result.stderr) < 300
    assert not private_config.exists()


def test_a_context_name_is_printed_as_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client, "open_transport", lambda api: _Whoami())
    name = "青岛-mgmt@a.b:1"
    result = invoke("login", "--api", "http://127.0.0.1:8080", "--name", name, stdin=TOKEN + "\n")
    assert result.exit_code == 0, result.stderr
    assert f"{name} is current" in result.stdout.replace("\n", "")
    assert invoke("config", "use-context", name).stdout == f"switched to context {name}\n"
    assert invoke("config", "current-context").stdout == f"{name}\n"
    assert invoke("config", "delete-context", name).stdout == f"deleted context {name}\n"


@pytest.mark.parametrize("command", ["use-context", "delete-context"])
@pytest.mark.parametrize("name", ["", "[/]", "a" * 65536])
def test_use_or_delete_context_refuses_a_name_that_cannot_be_one(
    command: str, name: str, monkeypatch: pytest.MonkeyPatch, private_config: Path
) -> None:
    monkeypatch.setattr(client, "open_transport", lambda api: _Whoami())
    invoke("login", "--api", "http://127.0.0.1:8080", "--name", "ops", stdin=TOKEN + "\n")
    before = private_config.read_bytes()
    result = invoke("config", command, name)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: context: ") and "is not a context name" in result.stderr
    assert len(result.stderr) < 300
    assert private_config.read_bytes() == before
    assert contexts.load(private_config).current == "ops"


def test_a_current_context_holding_markup_is_printed_as_it_reads(private_config: Path) -> None:
    contexts.save(
        contexts.Config(
            path=private_config,
            current="[/]",
            contexts={"[/]": contexts.Context(name="[/]", api="http://127.0.0.1:8080", token=TOKEN)},
        )
    )
    result = invoke("config", "current-context")
    assert (result.exit_code, result.stdout) == (0, "[/]\n")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
@pytest.mark.parametrize("command", [["centers", "list"], ["login", "--api", "http://127.0.0.1:8080"]])
def test_a_token_file_others_can_reach_is_refused(
    mode: int, command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, private_config: Path
) -> None:
    monkeypatch.setenv("CLOUDCTL_API", "http://127.0.0.1:8080")
    monkeypatch.setattr(client, "open_transport", lambda api: _Whoami())
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    token_file.chmod(mode)
    result = invoke("--token-file", str(token_file), *command)
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: token-file: {token_file} is accessible by others (mode {mode:04o}); it holds tokens: "
        f"`chmod 600 {token_file}`\n"
    )
    assert not private_config.exists()


def test_a_token_file_for_its_owner_alone_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client, "open_transport", lambda api: _Whoami())
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    token_file.chmod(0o600)
    result = invoke("--token-file", str(token_file), "login", "--api", "http://127.0.0.1:8080")
    assert result.exit_code == 0, result.stderr
    assert contexts.load(contexts.config_path()).contexts["127.0.0.1:8080"].token == TOKEN


def test_a_context_named_before_names_were_checked_can_still_be_used_and_deleted(
    private_config: Path,
) -> None:
    legacy = "my ctx"
    contexts.save(
        contexts.Config(
            path=private_config,
            current=None,
            contexts={legacy: contexts.Context(name=legacy, api="http://127.0.0.1:8080", token=TOKEN)},
        )
    )
    assert invoke("config", "use-context", legacy).exit_code == 0
    assert invoke("config", "delete-context", legacy).exit_code == 0
    assert contexts.load(private_config).contexts == {}


MAY_HAVE_ACTED = "; the request was sent and may have been carried out: look before you retry"


@pytest.mark.parametrize(
    ("args", "acted"),
    [(["token", "revoke", "0123456789abcdef"], True), (["centers", "list"], False)],
    ids=["post", "get"],
)
def test_a_connection_closed_unanswered_says_whether_a_change_may_have_been_made(
    args: list[str], acted: bool, answering: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = answering(b"")
    monkeypatch.setenv("CLOUDCTL_API", api)
    monkeypatch.setenv("CLOUDCTL_TOKEN", TOKEN)
    result = invoke(*args)
    assert result.exit_code == 3
    assert result.stderr == f"error: api: {api} closed the connection{MAY_HAVE_ACTED if acted else ''}\n"


@pytest.mark.parametrize(
    ("args", "acted"),
    [(["token", "revoke", "0123456789abcdef"], True), (["centers", "list"], False)],
    ids=["post", "get"],
)
def test_an_api_that_does_not_answer_in_time_is_one_line_and_exit_3(
    args: list[str], acted: bool, answering: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_answer(self: http.client.HTTPConnection) -> http.client.HTTPResponse:
        raise TimeoutError("timed out")

    monkeypatch.setattr(http.client.HTTPConnection, "getresponse", no_answer)
    api = answering(b"")
    monkeypatch.setenv("CLOUDCTL_API", api)
    monkeypatch.setenv("CLOUDCTL_TOKEN", TOKEN)
    result = invoke(*args)
    assert result.exit_code == 3
    assert result.stderr == f"error: api: {api} did not answer within 60 s{MAY_HAVE_ACTED if acted else ''}\n"


@pytest.mark.parametrize("body", [b"{}", b"[]", b'{"id": 5, "role": "sysadmin"}', b'"ok"', b""])
def test_login_to_something_that_names_no_principal_stores_nothing(
    body: bytes, monkeypatch: pytest.MonkeyPatch, private_config: Path
) -> None:
    monkeypatch.setattr(client, "open_transport", lambda api: Canned(200, body))
    result = invoke("login", "--api", "http://127.0.0.1:8080", stdin=TOKEN + "\n")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: api: http://127.0.0.1:8080 is not a cloudctl API: /v1/whoami named no principal; "
        "nothing was stored\n"
    )
    assert not private_config.exists()


def test_a_token_file_that_is_a_device_or_huge_is_refused_unread(
    tmp_path: Path, private_config: Path
) -> None:
    huge = tmp_path / "huge"
    huge.write_bytes(b"cct_" + b"a" * 10_000)
    huge.chmod(0o600)
    for path in (Path("/dev/null"), huge):  # a device is refused unread: /dev/zero never ends
        result = invoke("--token-file", str(path), "login", "--api", "http://127.0.0.1:8080")
        assert result.exit_code == 2
        assert result.stderr == (
            f"error: token-file: {str(path)!r} is a device, or over 4096 bytes: not a file to read\n"
        )
    assert not private_config.exists()


class _Endless(io.RawIOBase):
    """Standard input that never ends a line (``cat /dev/zero |``); reading past 1 MB fails the test."""

    def __init__(self) -> None:
        self.served = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        assert self.served < 1_000_000, "read standard input past any token's length"
        buffer[:] = b"a" * len(buffer)
        self.served += len(buffer)
        return len(buffer)


def test_a_token_on_standard_input_is_read_up_to_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(_Endless()), encoding="utf-8"))
    with pytest.raises(errors.InvalidInput) as refused:
        commands_login._read_token(None, "http://127.0.0.1:8080")
    assert refused.value.one_line() == "stdin: not a cloudctl token (they start with cct_)"


def test_ctrl_c_while_following_says_the_work_goes_on() -> None:
    polls: list[int] = []

    def poll() -> dict[str, str]:
        polls.append(1)
        return {"state": "running"}

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(errors.OperationFailed) as stopped:
        client.wait_for(
            poll,
            done=lambda run: run["state"] != "running",
            deadline_s=3600,
            what="run failover-1",
            sleep=interrupted,
        )
    assert stopped.value.one_line() == (
        "interrupted: stopped waiting for run failover-1; it was not stopped and goes on in the "
        "management center"
    )
    assert polls == [1]
