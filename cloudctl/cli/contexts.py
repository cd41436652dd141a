"""The client configuration: named contexts (an API URL and a person's token), kubeconfig-style.

The file is ``$XDG_CONFIG_HOME/cloudctl/config.yaml`` (default ``~/.config/cloudctl/config.yaml``)::

    current-context: mgmt-qingdao
    contexts:
      mgmt-qingdao: {api: "https://mgmt.example:8443", token: "cct_…"}
      mgmt-dezhou:  {api: "https://dr.example:8443", token: "cct_…"}

Invariants:
- the file holds secrets: it is written with mode 0600 (its directory 0700) by replacing it
  atomically, and a file that anyone but its owner can read or write is refused, as ssh
  refuses such a key (exit 2, naming the file and the ``chmod`` that fixes it);
- ``CLOUDCTL_API`` and ``CLOUDCTL_TOKEN`` override the current context's fields; either
  alone completes the other from the context;
- standard library and PyYAML only: remote commands start fast.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cloudctl import errors

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700


@dataclasses.dataclass(frozen=True)
class Context:
    name: str
    api: str
    token: str


@dataclasses.dataclass
class Config:
    path: Path
    current: str | None = None
    contexts: dict[str, Context] = dataclasses.field(default_factory=dict)

    def context(self, name: str | None = None) -> Context | None:
        """The context ``name`` (default: the current one). A name the file holds is taken as it is
        (one written before names were checked can still be used and deleted); another must be one
        a context could have before it is looked for."""
        chosen = self.current if name is None else name
        if chosen is None:
            return None
        if chosen not in self.contexts:
            check_context_name(chosen)
            known = ", ".join(sorted(self.contexts)) or "none"
            raise errors.NotFound(f"no context {chosen!r} in {self.path} (known: {known})", field="context")
        return self.contexts[chosen]


CONTEXT_NAME = re.compile(r"[\w.:@-]{1,64}")
"""A context's name: letters (any script), digits and ``_ . : @ -``, at most 64 (``host:port`` fits)."""


def check_context_name(name: str, *, field: str = "context") -> str:
    """``name`` once it can name a context: one word of ``CONTEXT_NAME``, nothing a terminal acts on."""
    if not CONTEXT_NAME.fullmatch(name):
        shown = repr(name) if len(name) <= 64 else f"{name[:64]!r}…"
        raise errors.InvalidInput(
            f"{shown} is not a context name: 1 to 64 letters, digits, '_', '.', ':', '@' or '-'", field=field
        )
    return name


def config_path(environ: dict[str, str] | None = None) -> Path:
    environ = dict(os.environ) if environ is None else environ
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "cloudctl" / "config.yaml"


URL_MAX = 2048
"""The longest API URL taken: a management center's address is a host, a port and a short prefix."""


def check_url(url: str, *, field: str = "api") -> str:
    """``http(s)://host[:port][/prefix]``, without a trailing slash: printable ASCII without spaces
    (it goes in the request line), and a port that is a number from 1 to 65535."""
    url = url.strip()
    if len(url) > URL_MAX:
        raise errors.InvalidInput(f"longer than {URL_MAX} characters", field=field)
    if not (url.isascii() and url.isprintable()) or any(ch.isspace() for ch in url):
        raise errors.InvalidInput(
            f"{url!r} holds spaces, control or non-ASCII characters (percent-encode them, or use punycode)",
            field=field,
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:  # a port out of range or not a number, an unclosed [IPv6 address
        raise errors.InvalidInput(f"{url!r} is not a URL: {error}", field=field) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise errors.InvalidInput(f"{url!r} is not an http(s):// URL of a management center", field=field)
    if port == 0:
        raise errors.InvalidInput(f"{url!r}: port 0 is no port to connect to", field=field)
    if parts.query or parts.fragment:
        raise errors.InvalidInput(f"{url!r}: no query or fragment, please", field=field)
    return url.rstrip("/")


def check_token(token: str, *, field: str = "token") -> str:
    """``token`` stripped, once it can be one: ``cct_`` and printable ASCII (it goes in a header)."""
    token = token.strip()
    printable = token.isascii() and token.isprintable() and not any(ch.isspace() for ch in token)
    if not token.startswith("cct_") or not printable or len(token) > 200:
        raise errors.InvalidInput("not a cloudctl token (they start with cct_)", field=field)
    return token


def refuse_loose(path: Path, info: os.stat_result, *, field: str = "config") -> None:
    """Refuse a file holding tokens (``info`` its status) that anyone but its owner, this user,
    can read or write, as ssh refuses such a key."""
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise errors.InvalidInput(
            f"{path} is accessible by others (mode {stat.S_IMODE(info.st_mode):04o}); it holds tokens: "
            f"`chmod 600 {path}`",
            field=field,
        )
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise errors.InvalidInput(f"{path} belongs to another user; it holds tokens", field=field)


def load(path: Path | None = None) -> Config:
    """The configuration (empty when the file does not exist)."""
    import yaml

    path = path or config_path()
    try:
        with path.open("rb") as handle:
            refuse_loose(path, os.fstat(handle.fileno()))
            raw = handle.read()
    except FileNotFoundError:
        return Config(path=path)
    except OSError as error:
        raise errors.InvalidInput(f"cannot read {path}: {error.strerror}", field="config") from None
    try:
        data = yaml.safe_load(raw) or {}
    except (yaml.YAMLError, RecursionError):  # nested past Python's stack: not a config we wrote
        raise errors.InvalidInput(f"{path} is not valid YAML", field="config") from None
    if not isinstance(data, dict) or not isinstance(data.get("contexts") or {}, dict):
        raise errors.InvalidInput(f"{path}: expected a mapping with `contexts`", field="config")
    contexts: dict[str, Context] = {}
    for name, entry in (data.get("contexts") or {}).items():
        if not isinstance(entry, dict) or not isinstance(entry.get("api"), str):
            raise errors.InvalidInput(f"{path}: context {name!r} needs `api`", field=f"contexts.{name}")
        contexts[str(name)] = Context(name=str(name), api=entry["api"], token=str(entry.get("token") or ""))
    current = data.get("current-context")
    return Config(path=path, current=str(current) if current else None, contexts=contexts)


def save(config: Config) -> None:
    """Write the file atomically with mode 0600 (the directory 0700 when created here)."""
    import yaml

    data: dict[str, Any] = {
        "current-context": config.current,
        "contexts": {
            name: {"api": context.api, "token": context.token}
            for name, context in sorted(config.contexts.items())
        },
    }
    directory = config.path.parent
    directory.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=".config.", dir=directory)
    try:
        os.fchmod(descriptor, FILE_MODE)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            yaml.safe_dump(data, handle, allow_unicode=True, sort_keys=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, config.path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def default_name(api: str) -> str:
    """A context's name when ``login`` is given none: the API's host and port."""
    parts = urlsplit(api)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def resolve(
    *, context_name: str | None, environ: dict[str, str] | None = None, path: Path | None = None
) -> Context | None:
    """The API and token a remote command uses: the context, with ``CLOUDCTL_API``/``CLOUDCTL_TOKEN``
    over it; ``None`` when neither names an API."""
    environ = dict(os.environ) if environ is None else environ
    api = environ.get("CLOUDCTL_API", "").strip()
    token = environ.get("CLOUDCTL_TOKEN", "").strip()
    if token:
        token = check_token(token, field="CLOUDCTL_TOKEN")
    chosen = load(path).context(context_name) if (context_name or not (api and token)) else None
    if chosen is None and not api:
        if token:
            raise errors.InvalidInput(
                "CLOUDCTL_TOKEN is set but no API: set CLOUDCTL_API or `cloudctl login --api URL`",
                field="api",
            )
        return None
    name = chosen.name if chosen else "environment"
    api = check_url(api or (chosen.api if chosen else ""))
    if not token and chosen is not None and chosen.token:
        token = check_token(chosen.token, field=f"contexts.{chosen.name}.token")
    return Context(name=name, api=api, token=token)
