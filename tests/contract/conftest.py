"""Fixtures of the contract suite: the real servers the non-simulator backends run against.

``moto_server`` is one ``moto_server`` process for the session, serving the S3 and
Route 53 APIs the ``s3-on-moto`` and ``route53-on-moto`` backends use; if it does not
come up, those tests fail loudly (never skip).
"""

from __future__ import annotations

import pytest

from tests.integration import moto_servers

CONTRACT_SERVER = "contract"


@pytest.fixture(scope="session")
def moto_server(request: pytest.FixtureRequest) -> moto_servers.MotoServer:
    return moto_servers.serve_for_session(request, centers=[CONTRACT_SERVER])[CONTRACT_SERVER]
