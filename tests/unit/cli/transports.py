"""Stand-ins for the CLI's transport to the API, answering as a server would (or would not)."""

from __future__ import annotations

import json
from typing import Any

from cloudctl.cli import client


class Canned:
    """A transport answering every request with one status and JSON body; it keeps the targets."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.headers: dict[str, str] = {}
        self.targets: list[str] = []

    def request(
        self, method: str, target: str, *, headers: dict[str, str], body: bytes | None
    ) -> client.Reply:
        self.targets.append(target)
        return client.Reply(status=self.status, headers=self.headers, body=self.body)

    def close(self) -> None:
        pass
