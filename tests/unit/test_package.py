"""The package a reader starts from: a version and a short, sorted public facade."""

from __future__ import annotations

from importlib import metadata

import cloudctl
from cloudctl import metrics


def test_the_package_states_its_version_and_its_build_info_metric_says_the_same() -> None:
    assert cloudctl.__version__ == metadata.version("cloudctl")
    sample = next(iter(metrics.BUILD_INFO.collect())).samples[0]
    assert sample.labels == {"version": cloudctl.__version__}


def test_the_public_facade_is_short_sorted_and_resolvable() -> None:
    assert cloudctl.__all__ == sorted(cloudctl.__all__)
    assert len(cloudctl.__all__) <= 5
    for name in cloudctl.__all__:
        assert getattr(cloudctl, name) is not None
