"""The Kubernetes containers driver, at the HTTP boundary, against recorded exchanges of the real API.

No Kubernetes API server can run here. ``ReplayServer`` is a loopback HTTP server that
answers the requests a recording expects, in order, with the recorded responses (objects
and ``Status`` errors in the real API's shapes, ``kubernetes_recordings/*.json``), and keeps
what the client sent. The driver runs unchanged with the official client end to end: a
kubeconfig points its context at the server. A request the recording does not expect is
answered 418 and fails the test at teardown, as does an expected request never made.

The recordings follow the real API server's objects, headers and ``Status`` bodies (reasons,
codes, messages word for word); no cluster was at hand to capture them, so they were written
from the API's documented and observed behaviour (see ``kubernetes_recordings/README.md``).

Retries sleep on a ``ManualClock``, so nothing here waits, except the one timeout test,
which waits out two read timeouts of 50 ms on purpose.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.drivers import kubernetes as kubernetes_driver
from cloudctl.drivers.kubernetes import calls, manifests

RECORDINGS = Path(__file__).parent / "kubernetes_recordings"
CENTER = "qd-a"
TOKEN = "replay-bearer-token"
CREATED_AT = 1_767_225_600.0  # 2026-01-01T00:00:00Z, the recordings' creationTimestamp
UNEXPECTED_STATUS = 418

MakeDriver = Callable[..., "kubernetes_driver.KubernetesContainers"]


# --- the replay transport --------------------------------------------------------------------


@dataclasses.dataclass
class SentRequest:
    """What the client sent for one exchange."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclasses.dataclass
class Exchange:
    """One recorded request (what must come) and the API's answer to it."""

    method: str
    path: str
    query: dict[str, str] | None
    request_body: Any
    status: int
    headers: dict[str, str]
    body: Any
    echoes: Exchange | None = None
    hold: bool = False
    sent: SentRequest | None = None


def load_recording(name: str) -> list[Exchange]:
    document = json.loads((RECORDINGS / f"{name}.json").read_text())
    exchanges: list[Exchange] = []
    for item in document["exchanges"]:
        request, response = item["request"], item["response"]
        echoed = response.get("echoes_request_of")
        exchanges.append(
            Exchange(
                method=request["method"],
                path=request["path"],
                query=request.get("query"),
                request_body=request.get("body"),
                status=response["status"],
                headers=response["headers"],
                body=response["body"],
                echoes=exchanges[echoed] if echoed is not None and echoed < len(exchanges) else None,
            )
        )
        if echoed is not None and echoed == len(exchanges) - 1:
            exchanges[-1].echoes = exchanges[-1]
    return exchanges


def contains(sent: Any, recorded: Any) -> bool:
    """Whether ``sent`` holds everything ``recorded`` holds (dicts recursively, anything else equal)."""
    if isinstance(recorded, dict):
        return isinstance(sent, dict) and all(
            key in sent and contains(sent[key], value) for key, value in recorded.items()
        )
    return bool(sent == recorded)


def merged(base_body: Any, override: Any) -> Any:
    """``override`` laid over ``base_body``: what the API answers is what was sent plus what it adds."""
    if isinstance(base_body, dict) and isinstance(override, dict):
        result = dict(base_body)
        for key, value in override.items():
            result[key] = merged(base_body.get(key), value)
        return result
    return override


class ReplayServer:
    """A loopback HTTP server that plays the Kubernetes API from recordings and keeps what it was sent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[Exchange] = []
        self._release = threading.Event()
        self.sent: list[SentRequest] = []
        self.unexpected: list[str] = []
        replay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, headers, body = replay.answer(
                    method=self.command,
                    target=self.path,
                    headers={key.lower(): value for key, value in self.headers.items()},
                    body=json.loads(raw) if raw else None,
                )
                if status == 0:  # held: answer nothing, as a hung server does
                    return
                payload = json.dumps(body).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            # The names http.server dispatches to, one per HTTP method.
            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll interval: shutdown() waits for the serving loop to notice it.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def expect(self, *recordings: str) -> None:
        with self._lock:
            for name in recordings:
                self._pending.extend(load_recording(name))

    def expect_exchange(self, exchange: Exchange) -> None:
        with self._lock:
            self._pending.append(exchange)

    def answer(
        self, *, method: str, target: str, headers: dict[str, str], body: Any
    ) -> tuple[int, dict[str, str], Any]:
        parts = urllib.parse.urlsplit(target)
        query = dict(urllib.parse.parse_qsl(parts.query))
        sent = SentRequest(method=method, path=parts.path, query=query, headers=headers, body=body)
        with self._lock:
            self.sent.append(sent)
            expected = self._pending[0] if self._pending else None
            mismatch = _mismatch(expected, sent)
            if mismatch is not None or expected is None:
                self.unexpected.append(f"{method} {target}: {mismatch}")
                return UNEXPECTED_STATUS, {"Content-Type": "application/json"}, {"unexpected": mismatch}
            self._pending.pop(0)
            expected.sent = sent
        if expected.hold:
            self._release.wait(timeout=10)
            return 0, {}, None
        response_body = expected.body
        if expected.echoes is not None and expected.echoes.sent is not None:
            response_body = merged(expected.echoes.sent.body, expected.body)
        return expected.status, expected.headers, response_body

    def requests(self) -> list[tuple[str, str]]:
        return [(request.method, request.path) for request in self.sent]

    def bodies(self, method: str, path: str) -> list[Any]:
        return [request.body for request in self.sent if (request.method, request.path) == (method, path)]

    def assert_played_out(self) -> None:
        assert not self.unexpected, f"requests the recordings did not expect: {self.unexpected}"
        left = [f"{exchange.method} {exchange.path}" for exchange in self._pending]
        assert not left, f"expected requests the driver never made: {left}"

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _mismatch(expected: Exchange | None, sent: SentRequest) -> str | None:
    if expected is None:
        return "no more requests expected"
    if (expected.method, expected.path) != (sent.method, sent.path):
        return f"expected {expected.method} {expected.path}"
    if expected.query is not None and expected.query != sent.query:
        return f"expected query {expected.query}, got {sent.query}"
    if expected.request_body is not None and not contains(sent.body, expected.request_body):
        return f"body {sent.body} lacks recorded {expected.request_body}"
    return None


def write_kubeconfig(path: Path, *, server_url: str, context: str = CENTER) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": server_url}}],
        "users": [{"name": "cloudctl", "user": {"token": TOKEN}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": "cloudctl"}}],
        "current-context": context,
    }
    path.write_text(json.dumps(config))  # JSON is YAML: the client reads it as a kubeconfig
    return path


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client takes proxies from the environment; loopback must be reached directly."""
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    server = ReplayServer()
    yield server
    server.close()
    server.assert_played_out()


@pytest.fixture
def make_driver(replay: ReplayServer, tmp_path: Path, clock: clocks.ManualClock) -> Iterator[MakeDriver]:
    drivers: list[kubernetes_driver.KubernetesContainers] = []

    def make(
        *, server_url: str | None = None, retry: calls.RetryPolicy | None = None
    ) -> kubernetes_driver.KubernetesContainers:
        kubeconfig = write_kubeconfig(
            tmp_path / f"kubeconfig-{len(drivers)}", server_url=server_url or replay.url
        )
        driver = kubernetes_driver.KubernetesContainers(
            center=CENTER,
            kubeconfig=kubeconfig,
            clock=clock,
            retry=retry if retry is not None else calls.RetryPolicy(attempts=3),
        )
        drivers.append(driver)
        return driver

    yield make
    for driver in drivers:
        driver.close()


@pytest.fixture
def driver(make_driver: MakeDriver) -> kubernetes_driver.KubernetesContainers:
    return make_driver()


NS_PATH = "/api/v1/namespaces/finance"
QUOTA_PATH = "/api/v1/namespaces/finance/resourcequotas/cloudctl-quota"
FINANCE = base.Namespace(name="finance", center=CENTER, vcpu=4, ram_gb=8, created_at=CREATED_AT)


# --- create -------------------------------------------------------------------------------------


def test_create_namespace_makes_the_namespace_then_its_four_companions(
    driver: kubernetes_driver.KubernetesContainers, replay: ReplayServer
) -> None:
    replay.expect("create_namespace")
    namespace = driver.create_namespace("finance", vcpu=4, ram_gb=8)
    assert namespace == FINANCE
    assert replay.requests() == [
        ("POST", "/api/v1/namespaces"),
        ("POST", "/api/v1/namespaces/finance/resourcequotas"),
        ("POST", "/api/v1/namespaces/finance/limitranges"),
        ("POST", "/apis/networking.k8s.io/v1/namespaces/finance/networkpolicies"),
        ("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/finance/rolebindings"),
    ]


def test_the_namespace_is_labelled_managed_with_its_department_and_a_creation_token(
    driver: kubernetes_driver.KubernetesContainers, replay: ReplayServer
) -> None:
    replay.expect("create_namespace")
    driver.create_namespace("finance", vcpu=4, ram_gb=8)
    (sent,) = replay.bodies("POST", "/api/v1/namespaces")
    assert sent["metadata"]["name"] == "finance"
    assert sent["metadata"]["labels"] == {"cloudctl.io/managed": "true", "cloudctl.io/department": "finance"}
    assert len(sent["metadata"]["annotations"]["cloudctl.io/creation-token"]) == 32


def test_the_quota_caps_cpu_and_memory_requests_and_limits(
    driver: kubernetes_driver.KubernetesContainers, replay: ReplayServer
) -> None:
    replay.expect("create_namespace")
    driver.create_namespace("finance", vcpu=4, ram_gb=8)
    (sent,) = replay.bodies("POST", "/api/v1/namespaces/finance/resourcequotas")
    assert sent["metadata"]["name"] == "cloudctl-quota"
    assert sent["metadata"]["labels"] == {"cloudctl.io/managed": "true"}
    assert sent["spec"] == {
        "hard": {"requests.cpu": "4", "limits.cpu": "4", "requests.memory": "8Gi", "limits.memory": "8Gi"}
    }


def test_the_limit_range_gives_containers_default_requests_and_limits(
    driver: kubernetes_driver.KubernetesContainers, replay: ReplayServer
) -> None:
    replay.expect("create_namespace")
    driver.create_namespace("finance", vcpu=4, ram_gb=8)
    (sent,) = replay.bodies("POST", "/api/v1/namespaces/finance/limitranges")
    assert sent["spec"] == {
        "limits": [
            {
                "type": "Container",
                "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
                "default": {"cpu": "500m", "memory": "512Mi"},
            }
        ]
    }


def test_the_network_policy_denies_all_ingress_and_egress(
    driver: kubernetes_driver.KubernetesContainers, replay: ReplayServer
) -> None:
    replay.expect("create_namespace")
    driver.create_namespace("finance", vcpu=4, ram_gb=8)
    (sent,) = replay.bodies("POST", "/apis/networking.k8s.io/v1/namespaces/finance/networkpolicies")
    assert sent["metadata"]["name"] == "default-deny"
    # Every pod selected, both directions declared, no rule: nothing is allowed in or out.
    assert sent["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_the_department_group_administers_its_own_namespace_only(
    driver: kubernetes_driver.KubernetesContainers, replay: ReplayServer
) -> None:
    replay.expect("create_namespace")
    driver.create_namespace("finance", vcpu=4, ram_gb=8)
    (sent,) = replay.bodies("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/finance/rolebindings")
    assert sent["kind"] == "RoleBinding"  # namespaced: not a ClusterRoleBinding
    assert sent["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "admin",
    }
    assert sent["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "cloudctl:dept:finance"}
    ]


def test_every_request_carries_the_kubeconfig_credentials(
    driver: kubernetes_driver.KubernetesContainers, replay: ReplayServer
) -> None:
    replay.expect("create_namespace")
    driver.create_namespace("finance", vcpu=4, ram_gb=8)
    assert {request.headers["authorization"] for request in replay.sent} == {f"Bearer {TOKEN}"}


def test_creating_an_existing_namespace_is_a_conflict(
    driver: kubernetes_driver.KubernetesContainers, replay: ReplayServer
) -> None:
    replay.expect("create_namespace_exists")
    with pytest.raises(errors.Conflict) as caught:
        driver.create_namespace("finance", vcpu=4, ram_gb=8)
    assert caught.value.field == "namespace"
    assert "already exists" in caught.value.reason


def test_a_create_whose_answer_was_lost_recognises_its_own_namespace_by_the_token(
    driver: kubernetes_driver.KubernetesContainers, replay: ReplayServer, clock: clocks.ManualClock
) -> None:
    replay.expect("create_namespace_answer_lost")
    start = clock.now()
    assert driver.create_namespace("finance", vcpu=4, ram_gb=8) == FINANCE
    first, retried = replay.bodies("POST", "/api/v1/namespaces")
    assert first == retried
    assert clock.now() > start


def test_a_refused_companion_deletes_the_half_made_namespace(
    driver: kubernetes_driver.KubernetesContainers, replay: ReplayServer
) -> None:
    replay.expect("create_namespace_rolled_back")
    with pytest.raises(errors.OperationFailed) as caught:
        driver.create_namespace("finance", vcpu=4, ram_gb=8)
    assert caught.value.field == "credentials"
    assert "attempting to grant RBAC permissions not currently held" in caught.value.reason
    assert replay.requests()[-1] == ("DELETE", NS_PATH)


def test_an_invalid_name_is_invalid_input_naming_the_field_of_the_status_causes(
    driver: kubernetes_driver.KubernetesContainers, replay: ReplayServer
) -> None:
    replay.expect("create_namespace_invalid_name")
    with pytest.raises(errors.InvalidInput) as caught:
        driver.create_namespace("Finance_Bureau", vcpu=4, ram_gb=8)
    assert type(caught.value) is errors.InvalidInput
    assert caught.value.field == "metadata.name"
    assert "RFC 1123" in caught.value.reason


@pytest.mark.parametrize(("vcpu", "ram_gb"), [(-1, 8), (4, True)])
def test_sizes_are_checked_before_anything_is_sent(
    driver: kubernetes_driver.KubernetesContainers, replay: ReplayServer, vcpu: int, ram_gb: int
) -> None:
    with pytest.raises(errors.InvalidInput):
        driver.create_namespace("finance", vcpu=vcpu, ram_gb=ram_gb)
    assert replay.sent == []


# --- get and list -------------------------------------------------------------------------------


def test_get_namespace_reads_the_sizes_from_its_quota(
    driver: kubernetes_driver.KubernetesContainers, replay: ReplayServer
) -> None:
    replay.expect("get_namespace")
    assert driver.get_namespace("finance") == FINANCE
    assert replay.requests() == [("GET", NS_PATH), ("GET", QUOTA_PATH)]


@pytest.mark.parametrize(
    ("recording", "name"),
    [
        ("get_namespace_missing", "finance"),
        ("get_namespace_unmanaged", "kube-system"),
        ("get_namespace_terminating", "finance"),
    ],
)
def test_get_namespace_of_a_missing_foreign_or_terminating_namespace_is_not_found(
    driver: kubernetes_driver.KubernetesContainers, replay: ReplayServer, recording: str, name: str
) -> None:
    replay.expect(recording)
    with pytest.raises(errors.NotFound) as caught:
        driver.get_namespace(name)
    assert caught.value.field == "namespace"


def test_a_namespace_whose_quota_was_deleted_has_no_size_to_report(
    driver: kubernetes_driver.KubernetesContainers, replay: ReplayServer
) -> None:
    replay.expect("get_namespace_quota_missing")
    with pytest.raises(errors.OperationFailed) as caught:
        driver.get_namespace("finance")
    assert "set_namespace_quota restores it" in caught.value.reason


def test_list_namespaces_selects_by_the_managed_label_and_skips_terminating_and_quotaless(
    driver: kubernetes_driver.KubernetesContainers, replay: ReplayServer
) -> None:
    replay.expect("list_namespaces")
    listed = driver.list_namespaces()
    assert listed == [
        FINANCE,
        base.Namespace(name="works", center=CENTER, vcpu=16, ram_gb=64, created_at=CREATED_AT),
    ]
    assert [request.query for request in replay.sent] == [{"labelSelector": "cloudctl.io/managed=true"}] * 2


# --- delete -------------------------------------------------------------------------------------


def test_delete_namespace_deletes_a_managed_namespace(
    driver: kubernetes_driver.KubernetesContainers, replay: ReplayServer
) -> None:
    replay.expect("delete_namespace")
    driver.delete_namespace("finance")
    assert replay.requests() == [("GET", NS_PATH), ("DELETE", NS_PATH)]


def test_deleting_twice_is_harmless(
    driver: kubernetes_driver.KubernetesContainers, replay: ReplayServer
) -> None:
    replay.expect("delete_namespace", "delete_namespace_missing")
    driver.delete_namespace("finance")
    driver.delete_namespace("finance")


def test_deleting_a_missing_namespace_is_not_found_unless_ignored(
    driver: kubernetes_driver.KubernetesContainers, replay: ReplayServer
) -> None:
    replay.expect("delete_namespace_missing")
    with pytest.raises(errors.NotFound):
        driver.delete_namespace("finance", ignore_missing=False)


@pytest.mark.parametrize("recording", ["delete_namespace_terminating", "delete_namespace_raced"])
def test_a_namespace_already_being_deleted_counts_as_deleted(
    driver: kubernetes_driver.KubernetesContainers, replay: ReplayServer, recording: str
) -> None:
    replay.expect(recording, recording)
    driver.delete_namespace("finance")
    with pytest.raises(errors.NotFound):
        driver.delete_namespace("finance", ignore_missing=False)


def test_a_namespace_cloudctl_did_not_make_is_never_deleted(
    driver: kubernetes_driver.KubernetesContainers, replay: ReplayServer
) -> None:
    replay.expect("delete_namespace_unmanaged")
    with pytest.raises(errors.Conflict) as caught:
        driver.delete_namespace("kube-system")
    assert "not managed by cloudctl" in caught.value.reason
    assert [method for method, _ in replay.requests()] == ["GET"]


# --- quota --------------------------------------------------------------------------------------


def test_set_namespace_quota_replaces_the_quota_at_the_version_read(
    driver: kubernetes_driver.KubernetesContainers, replay: ReplayServer
) -> None:
    replay.expect("set_namespace_quota")
    resized = driver.set_namespace_quota("finance", vcpu=8, ram_gb=16)
    assert resized == dataclasses.replace(FINANCE, vcpu=8, ram_gb=16)
    (sent,) = replay.bodies("PUT", QUOTA_PATH)
    assert sent["metadata"]["resourceVersion"] == "48215"
    assert sent["spec"]["hard"] == {
        "requests.cpu": "8",
        "limits.cpu": "8",
        "requests.memory": "16Gi",
        "limits.memory": "16Gi",
    }


def test_a_stale_resource_version_is_read_again_and_retried_once(
    driver: kubernetes_driver.KubernetesContainers, replay: ReplayServer
) -> None:
    replay.expect("set_namespace_quota_stale_once")
    resized = driver.set_namespace_quota("finance", vcpu=8, ram_gb=16)
    assert (resized.vcpu, resized.ram_gb) == (8, 16)
    versions = [body["metadata"]["resourceVersion"] for body in replay.bodies("PUT", QUOTA_PATH)]
    assert versions == ["48215", "48412"]


def test_a_resource_version_stale_twice_is_a_conflict(
    driver: kubernetes_driver.KubernetesContainers, replay: ReplayServer
) -> None:
    replay.expect("set_namespace_quota_stale_twice")
    with pytest.raises(errors.Conflict) as caught:
        driver.set_namespace_quota("finance", vcpu=8, ram_gb=16)
    assert caught.value.field == "resourcequota"
    assert "the object has been modified" in caught.value.reason


def test_a_quota_deleted_behind_cloudctls_back_is_created_again(
    driver: kubernetes_driver.KubernetesContainers, replay: ReplayServer
) -> None:
    replay.expect("set_namespace_quota_restores_missing")
    resized = driver.set_namespace_quota("finance", vcpu=8, ram_gb=16)
    assert (resized.vcpu, resized.ram_gb) == (8, 16)
    assert replay.requests()[-1] == ("POST", "/api/v1/namespaces/finance/resourcequotas")


def test_set_namespace_quota_of_a_missing_namespace_is_not_found(
    driver: kubernetes_driver.KubernetesContainers, replay: ReplayServer
) -> None:
    replay.expect("get_namespace_missing")
    with pytest.raises(errors.NotFound):
        driver.set_namespace_quota("finance", vcpu=8, ram_gb=16)


# --- errors, retries and timeouts ---------------------------------------------------------------


def test_server_errors_are_retried_then_backend_unavailable(
    driver: kubernetes_driver.KubernetesContainers, replay: ReplayServer, clock: clocks.ManualClock
) -> None:
    replay.expect("server_error_500")
    start = clock.now()
    with pytest.raises(errors.BackendUnavailable) as caught:
        driver.get_namespace("finance")
    assert len(replay.sent) == 3
    assert caught.value.field == "server"
    assert "resource quota evaluation timed out" in caught.value.reason
    # Two waits of exponential backoff with jitter: 0.5..1.0 s, then 1.0..1.5 s.
    assert 1.5 <= clock.now() - start <= 2.5


def test_throttling_waits_as_long_as_retry_after_then_succeeds(
    driver: kubernetes_driver.KubernetesContainers, replay: ReplayServer, clock: clocks.ManualClock
) -> None:
    replay.expect("throttled_429")
    start = clock.now()
    assert driver.get_namespace("finance") == FINANCE
    assert clock.now() - start == 5.0  # Retry-After: 5, longer than the backoff's first wait


def test_throttling_that_persists_is_backend_unavailable(
    driver: kubernetes_driver.KubernetesContainers, replay: ReplayServer, clock: clocks.ManualClock
) -> None:
    replay.expect("throttled_429_always")
    start = clock.now()
    with pytest.raises(errors.BackendUnavailable):
        driver.get_namespace("finance")
    assert len(replay.sent) == 3
    assert clock.now() - start >= 10.0


def test_a_retry_after_longer_than_allowed_gives_up_at_once(
    driver: kubernetes_driver.KubernetesContainers, replay: ReplayServer, clock: clocks.ManualClock
) -> None:
    replay.expect("throttled_429_long")
    start = clock.now()
    with pytest.raises(errors.BackendUnavailable) as caught:
        driver.get_namespace("finance")
    assert "retry after 600 s" in caught.value.reason
    assert len(replay.sent) == 1
    assert clock.now() == start


@pytest.mark.parametrize(
    ("recording", "call"),
    [
        ("unauthorized_401", lambda driver: driver.get_namespace("finance")),
        ("forbidden_403", lambda driver: driver.create_namespace("finance", vcpu=4, ram_gb=8)),
    ],
)
def test_refused_credentials_are_an_operation_failure_on_the_credentials(
    driver: kubernetes_driver.KubernetesContainers, replay: ReplayServer, recording: str, call: Any
) -> None:
    replay.expect(recording)
    with pytest.raises(errors.OperationFailed) as caught:
        call(driver)
    assert caught.value.field == "credentials"
    assert len(replay.sent) == 1  # never retried


def test_a_refused_connection_is_retried_then_backend_unavailable(
    make_driver: MakeDriver, clock: clocks.ManualClock
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    driver = make_driver(server_url=f"http://127.0.0.1:{closed_port}")
    start = clock.now()
    with pytest.raises(errors.BackendUnavailable) as caught:
        driver.get_namespace("finance")
    assert "did not answer after 3 attempts" in caught.value.reason
    assert clock.now() > start


def test_a_hung_server_times_out_and_is_retried(make_driver: MakeDriver, replay: ReplayServer) -> None:
    for _ in range(2):
        replay.expect_exchange(
            Exchange(
                method="GET",
                path=NS_PATH,
                query=None,
                request_body=None,
                status=0,
                headers={},
                body=None,
                hold=True,
            )
        )
    driver = make_driver(retry=calls.RetryPolicy(attempts=2, connect_timeout_s=1.0, read_timeout_s=0.05))
    with pytest.raises(errors.BackendUnavailable) as caught:
        driver.get_namespace("finance")
    assert "ReadTimeoutError" in caught.value.reason
    assert len(replay.sent) == 2


def test_a_kubeconfig_without_the_centers_context_is_invalid_input(tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server_url="http://127.0.0.1:1", context="dz-dr")
    with pytest.raises(errors.InvalidInput) as caught:
        kubernetes_driver.KubernetesContainers(center=CENTER, kubeconfig=kubeconfig)
    assert caught.value.field == "kubeconfig"
    assert "'qd-a'" in caught.value.reason


# --- the pieces ---------------------------------------------------------------------------------


def test_retry_after_may_be_seconds_or_an_http_date() -> None:
    now = clocks.ManualClock().now()
    assert calls.retry_after_s({"Retry-After": "3"}, now=now) == 3.0
    assert calls.retry_after_s({"Retry-After": "Thu, 01 Jan 2026 00:00:30 GMT"}, now=now) == 30.0
    assert calls.retry_after_s({}, now=now) is None
    assert calls.retry_after_s({"Retry-After": "soon"}, now=now) is None


@pytest.mark.parametrize(
    ("cpu", "memory", "sizes"),
    [("4", "8Gi", (4, 8)), ("1500m", "8192Mi", (1, 8)), ("2", "1536Mi", (2, 1)), ("16", "64G", (16, 59))],
)
def test_quota_sizes_are_whole_units_rounded_down(cpu: str, memory: str, sizes: tuple[int, int]) -> None:
    quota = manifests.resource_quota("finance", vcpu=0, ram_gb=0)
    assert quota.spec is not None
    quota.spec.hard = {"requests.cpu": cpu, "requests.memory": memory}
    assert manifests.quota_sizes(quota) == sizes


def test_a_quota_without_cloudctls_keys_has_no_sizes() -> None:
    quota = manifests.resource_quota("finance", vcpu=0, ram_gb=0)
    assert quota.spec is not None
    quota.spec.hard = {"pods": "10"}
    assert manifests.quota_sizes(quota) is None
