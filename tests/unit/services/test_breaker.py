"""The circuit breaker's thresholds: ``Breakers`` arguments, defaulting to the module constants,
and the settings ``breaker_failures_to_open`` / ``breaker_cooldown_s`` that ``services.drivers``
passes it. Time is the manual clock's: no test waits a cooldown out."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl import settings as settings_module
from cloudctl.services import breaker, drivers, faults, setup
from cloudctl.services import context as ctx_module
from cloudctl.store import db
from tests.conftest import POLICIES, TOPOLOGY

CENTER = "qd-a"


class Changes(list[tuple[str, str]]):
    """What ``Breakers`` reported through ``on_change``, in order."""

    def record(self, center: str, state: str) -> None:
        self.append((center, state))


def test_the_circuit_opens_after_the_configured_failures_and_lets_a_call_through_after_the_cooldown() -> None:
    clock = clocks.ManualClock()
    changes = Changes()
    breakers = breaker.Breakers(clock=clock, on_change=changes.record, failures_to_open=2, cooldown_s=10)

    breakers.failed(CENTER)
    assert not breakers.is_open(CENTER)
    breakers.failed(CENTER)

    assert breakers.is_open(CENTER)
    with pytest.raises(errors.BackendUnavailable, match=r"failed 2 times in a row.*after a 10 s cooldown"):
        breakers.before_call(CENTER)
    clock.advance(9.5)
    assert breakers.is_open(CENTER)
    clock.advance(0.5)
    breakers.before_call(CENTER)  # let through
    breakers.succeeded(CENTER)
    assert changes == [(CENTER, "unhealthy"), (CENTER, "up")]


def test_without_arguments_the_thresholds_are_the_module_constants(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLOUDCTL_BREAKER_FAILURES_TO_OPEN", raising=False)
    monkeypatch.delenv("CLOUDCTL_BREAKER_COOLDOWN_S", raising=False)
    breakers = breaker.Breakers(clock=clocks.ManualClock(), on_change=Changes().record)

    assert (breakers.failures_to_open, breakers.cooldown_s) == (breaker.FAILURES_TO_OPEN, breaker.COOLDOWN_S)
    assert settings_module.Settings().breaker_failures_to_open == breaker.FAILURES_TO_OPEN
    assert settings_module.Settings().breaker_cooldown_s == breaker.COOLDOWN_S


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"failures_to_open": 0}, "breaker_failures_to_open"),
        ({"cooldown_s": 0.0}, "breaker_cooldown_s"),
        ({"cooldown_s": float("nan")}, "breaker_cooldown_s"),
    ],
)
def test_a_bad_threshold_is_refused_naming_its_setting(arguments: dict[str, float], field: str) -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        breaker.Breakers(clock=clocks.ManualClock(), on_change=Changes().record, **arguments)

    assert caught.value.field == field


def test_the_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDCTL_BREAKER_FAILURES_TO_OPEN", "2")
    monkeypatch.setenv("CLOUDCTL_BREAKER_COOLDOWN_S", "10")

    settings = settings_module.Settings()

    assert (settings.breaker_failures_to_open, settings.breaker_cooldown_s) == (2, 10.0)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "CLOUDCTL_BREAKER_FAILURES_TO_OPEN",
            "0",
            "breaker_failures_to_open: input should be greater than or equal to 1, not '0'",
        ),
        (
            "CLOUDCTL_BREAKER_FAILURES_TO_OPEN",
            "many",
            "breaker_failures_to_open: input should be a valid integer",
        ),
        ("CLOUDCTL_BREAKER_COOLDOWN_S", "0", "breaker_cooldown_s: input should be greater than 0, not '0'"),
        ("CLOUDCTL_BREAKER_COOLDOWN_S", "inf", "breaker_cooldown_s: input should be a finite number"),
    ],
)
def test_a_bad_setting_is_a_one_line_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(errors.InvalidInput) as caught:
        settings_module.Settings()

    assert caught.value.one_line().startswith(expected)
    assert "\n" not in caught.value.one_line()
    assert caught.value.exit_code == 2


def test_the_services_breakers_open_and_close_a_center_by_the_settings(
    store: db.Store, tmp_path: Path
) -> None:
    settings = settings_module.Settings(
        home=tmp_path,
        database_url=store.url,
        topology=TOPOLOGY,
        policies=POLICIES,
        breaker_failures_to_open=2,
        breaker_cooldown_s=10,
    )
    clock = clocks.ManualClock()
    ctx = ctx_module.Context(settings=settings, clock=clock, _store=store)
    setup.initialise(ctx)
    compute = drivers.center_drivers(ctx, CENTER).compute
    faults.inject(ctx, kind="api-error-rate", center=CENTER, rate=1.0)

    for _ in range(2):
        with pytest.raises(errors.InjectedFault):
            compute.list_servers(project=None)
    faults.clear(ctx)

    with pytest.raises(errors.BackendUnavailable, match="circuit is open"):
        compute.list_servers(project=None)
    clock.advance(10)
    compute.list_servers(project=None)
    assert not drivers.breakers(ctx).is_open(CENTER)
