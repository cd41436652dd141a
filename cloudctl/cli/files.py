"""Files the command line writes for the user: checked before anything is done, replaced whole.

Invariants: a destination that cannot be written is refused (``InvalidInput`` naming the option,
with the system's reason) before the command reads state or breaks glass; a written file replaces
the old one in one rename, its bytes and the rename synced first, so a reader sees the old file
or the new one, never half of one or an empty one after a power cut; a failed write leaves
nothing beside it.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from cloudctl import errors

INPUT_FILE_MAX = 1 << 20
"""The largest YAML file a command reads (a drill plan, a hooks file): the API takes a plan of at
most 200,000 characters."""


def read_bounded(path: Path, *, field: str, max_bytes: int = INPUT_FILE_MAX) -> str:
    """The text of a file the user named, at most ``max_bytes`` bytes (``errors.read_input_file``)."""
    return errors.read_input_file(path, field=field, max_bytes=max_bytes)


def check_writable(path: Path, *, field: str, make_parents: bool = False) -> None:
    """Refuse ``path`` if it is a directory, lies under a file, or (unless ``make_parents``) under
    a directory that does not exist."""
    problem = None
    if path.is_dir():
        problem = errno.EISDIR
    else:
        nearest = next((above for above in path.parents if above.exists()), None)
        if nearest is not None and not nearest.is_dir():
            problem = errno.ENOTDIR
        elif nearest != path.parent and not make_parents:
            problem = errno.ENOENT
    if problem is not None:
        raise errors.InvalidInput(f"cannot write {str(path)!r}: {os.strerror(problem)}", field=field)


def write_replacing(path: Path, data: bytes, *, mode: int, field: str, make_parents: bool = False) -> None:
    """``data`` as the file ``path`` (permissions ``mode``), replacing it in one synced rename."""
    directory = path.parent
    temporary: str | None = None
    try:
        if make_parents:
            directory.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)  # 0600
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
        temporary = None
        directory_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)
    except OSError as error:
        raise errors.InvalidInput(f"cannot write {str(path)!r}: {error.strerror}", field=field) from None
    finally:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
