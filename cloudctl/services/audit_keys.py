"""The audit chain's keys and the signed checkpoints of its head, both kept outside the database.

Key ring file (``settings.audit_key_file``, default ``<home>/audit.key``): one key per line,
``<key id> <base64 secret>``; ``#`` starts a comment. The last key signs new records; the
earlier ones stay to verify the records they signed (rotation appends a line, never removes
one). The file must be readable by the service user alone (mode 0600): a file that others
can read is refused, naming the setting. The default file is created on first use; a file
named in the settings must exist.

A key provider other than the file (a vault, an HSM) plugs in through
``settings.audit_key_provider = "module:factory"``: ``factory(settings)`` returns an object
with ``current() -> SigningKey`` and ``keys() -> Mapping[str, bytes]``.

Checkpoints (``settings.audit_checkpoint_file``): JSON lines ``{seq, hash, at, key_id, mac}``
where ``mac`` is an HMAC-SHA256 of the seq, hash and time under the named key. They are
only appended; a chain whose head is behind a checkpoint, or whose record at a checkpoint's
seq has another hash, was truncated or re-written.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import hashlib
import hmac
import importlib
import json
import os
import secrets
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from cloudctl import errors
from cloudctl import settings as settings_module
from cloudctl.services import private_files
from cloudctl.store import audit as audit_store

SigningKey = audit_store.SigningKey
_write_lock = threading.Lock()


class KeyProvider(Protocol):
    def current(self) -> SigningKey: ...

    def keys(self) -> Mapping[str, bytes]: ...


def new_key_id(now: float) -> str:
    day = datetime.datetime.fromtimestamp(now, tz=datetime.UTC).strftime("%Y%m%d")
    return f"k{day}-{secrets.token_hex(3)}"


class FileKeyRing:
    """Keys read from a file only the service user can read."""

    FIELD = "audit_key_file"

    def __init__(self, path: Path, *, create: bool) -> None:
        self.path = path
        if create and not path.exists():
            self._create()
        self._keys = self._read()

    def current(self) -> SigningKey:
        key_id, secret = list(self._keys.items())[-1]
        return SigningKey(id=key_id, secret=secret)

    def keys(self) -> Mapping[str, bytes]:
        return dict(self._keys)

    def rotate(self, *, now: float) -> SigningKey:
        """Append a new signing key; the old ones stay for verification."""
        key = SigningKey(id=new_key_id(now), secret=secrets.token_bytes(32))
        with _write_lock:
            lines = self.path.read_text(encoding="utf-8")
            if lines and not lines.endswith("\n"):
                lines += "\n"
            _write_private(self.path, lines + _line(key))
        self._keys = self._read()
        return key

    def _create(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        key = SigningKey(
            id=new_key_id(datetime.datetime.now(tz=datetime.UTC).timestamp()), secret=secrets.token_bytes(32)
        )
        header = "# cloudctl audit key ring: <key id> <base64 secret>; the last key signs\n"
        private_files.create(self.path, header + _line(key))

    def _read(self) -> dict[str, bytes]:
        text = private_files.read(
            self.path,
            field=self.FIELD,
            missing=f"no audit key ring at {str(self.path)!r}; create it with `cloudctl audit key rotate`",
        )
        keys: dict[str, bytes] = {}
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            key_id, _, encoded = line.partition(" ")
            try:
                secret = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                secret = b""
            if not key_id or len(key_id) > 40 or len(secret) < 16:
                raise errors.InvalidInput(
                    f"line {number} of {str(self.path)!r} is not '<key id> <base64 secret of 16+ bytes>'",
                    field=self.FIELD,
                )
            keys[key_id] = secret
        if not keys:
            raise errors.InvalidInput(f"{str(self.path)!r} holds no key", field=self.FIELD)
        return keys


def _line(key: SigningKey) -> str:
    return f"{key.id} {base64.b64encode(key.secret).decode()}\n"


def _write_private(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    partial.replace(path)


def provider(settings: settings_module.Settings) -> KeyProvider:
    """The key provider the settings name: a plug-in factory, else the key ring file."""
    if settings.audit_key_provider:
        module_name, _, attribute = settings.audit_key_provider.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError, ValueError):
            raise errors.InvalidInput(
                f"cannot load {settings.audit_key_provider!r} (want module:factory)",
                field="audit_key_provider",
            ) from None
        loaded = factory(settings)
        assert hasattr(loaded, "current") and hasattr(loaded, "keys")
        return loaded  # type: ignore[no-any-return]
    return FileKeyRing(settings.resolved_audit_key_file(), create=settings.audit_key_file is None)


# --- checkpoints ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    at: float
    key_id: str
    mac: str


def _checkpoint_mac(secret: bytes, seq: int, hash_: str, at: float) -> str:
    message = f"cloudctl-audit-checkpoint\n{seq}\n{hash_}\n{at:.6f}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def sign_checkpoint(key: SigningKey, *, seq: int, hash_: str, at: float) -> Checkpoint:
    at = round(at, 6)
    return Checkpoint(
        seq=seq, hash=hash_, at=at, key_id=key.id, mac=_checkpoint_mac(key.secret, seq, hash_, at)
    )


def checkpoint_valid(checkpoint: Checkpoint, keys: Mapping[str, bytes]) -> bool:
    secret = keys.get(checkpoint.key_id)
    if secret is None:
        return False
    expected = _checkpoint_mac(secret, checkpoint.seq, checkpoint.hash, checkpoint.at)
    return hmac.compare_digest(expected, checkpoint.mac)


def append_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(dataclasses.asdict(checkpoint), sort_keys=True) + "\n"
    with _write_lock:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(descriptor, "a", encoding="utf-8") as out:
            out.write(line)
            out.flush()
            os.fsync(out.fileno())


def read_checkpoints(path: Path) -> list[Checkpoint | None]:
    """Every checkpoint line in order; ``None`` for a line that is not a checkpoint."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    found: list[Checkpoint | None] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            fields: dict[str, Any] = json.loads(line)
            found.append(
                Checkpoint(
                    seq=int(fields["seq"]),
                    hash=str(fields["hash"]),
                    at=float(fields["at"]),
                    key_id=str(fields["key_id"]),
                    mac=str(fields["mac"]),
                )
            )
        except (ValueError, KeyError, TypeError):
            found.append(None)
    return found
