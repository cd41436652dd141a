"""Secrets kept in files the service user alone may read: the audit key ring, the scrape token.

Invariants: a file is made with ``O_EXCL`` and mode 0600 from the start (never widened, then
narrowed), its bytes synced before it is used; when two replicas make it at once, one wins and
the other reads the winner's. A file open to other users is refused, naming the mode and the fix,
before its content is used: a secret others could read is no secret.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cloudctl import errors


def create(path: Path, text: str) -> bool:
    """Write ``text`` to a new ``path`` (0600, synced); ``False`` when the file exists already."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    return True


def read(path: Path, *, field: str, missing: str) -> str:
    """The text of ``path``, refused (``InvalidInput`` naming ``field``) when it is missing
    (``missing`` says what to do), unreadable, or open to other users."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise errors.InvalidInput(missing, field=field) from None
    except OSError as error:
        raise errors.InvalidInput(f"cannot read {str(path)!r}: {error.strerror}", field=field) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise errors.InvalidInput(
            f"{str(path)!r} is open to other users (mode {stat.S_IMODE(mode):04o}); "
            "make it readable by the service user alone (chmod 600)",
            field=field,
        )
    return text
