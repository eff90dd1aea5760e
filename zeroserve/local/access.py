"""Who may call the local control API: its owner, with a token (docs/local-mode.md, "The
control API's token").

The control API can apply manifests, which run commands: it is its owner's alone, as
Jupyter's token and Docker's socket are. ``zeroserve up`` makes a random token, writes it
to a file only its user can read (mode 0600, in a 0700 directory) and removes it at exit;
every call carries it as ``Authorization: Bearer <token>``. The file is found by the
control port (``control-<port>.json``), so the ``zeroserve`` client needs only
``--server``; its children (activator, autoscaler) get the token in their environment.

This module imports nothing heavy: the ``zeroserve`` client and the data-plane
processes use it.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import pwd
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

TOKEN_ENV = "ZEROSERVE_CONTROL_TOKEN"
"""The token, for the activator and autoscaler processes ``zeroserve up`` starts."""
CLIENT_TOKEN_ENV = "ZEROSERVE_TOKEN"
"""The token, for the ``zeroserve`` client when its file cannot be read (another user)."""
SCHEME = "Bearer"


class TokenFileError(RuntimeError):
    """The token file or its directory cannot be made safely; the message says why."""


def token_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_RUNTIME_DIR/zeroserve`` if that is set, else ``~/.zeroserve``."""
    env = os.environ if env is None else env
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if runtime:
        return Path(runtime) / "zeroserve"
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".zeroserve"


def token_path(port: int, env: Mapping[str, str] | None = None) -> Path:
    """The token file of the control API on ``port``."""
    return token_dir(env) / f"control-{port}.json"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode):
        raise TokenFileError(f"{path} is not a directory")
    if st.st_uid != os.getuid():
        raise TokenFileError(f"{path} belongs to another user (uid {st.st_uid})")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)


def write_token_file(port: int, url: str, token: str, env: Mapping[str, str] | None = None) -> Path:
    """Write ``{"url", "token", "pid"}`` to the port's token file, readable by this user
    only; replaces a file left by an earlier run on the same port."""
    path = token_path(port, env)
    try:
        _private_dir(path.parent)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"url": url, "token": token, "pid": os.getpid()}, f)
        os.replace(tmp, path)
    except OSError as e:
        raise TokenFileError(f"cannot write the control API token to {path}: {e}") from None
    return path


def remove_token_file(path: Path, token: str) -> None:
    """Remove ``path`` if it still holds ``token`` (not a later run's file)."""
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("token") == token:
            path.unlink()


def read_token_file(port: int, env: Mapping[str, str] | None = None) -> str | None:
    """The token in the port's file; None if there is no such file. Raises
    ``TokenFileError`` if it exists but cannot be read."""
    path = token_path(port, env)
    try:
        data = json.loads(path.read_text())
        token = data["token"]
        if not isinstance(token, str) or not token:
            raise ValueError("no token")
        return token
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise TokenFileError(f"cannot read the control API token from {path}: {e}") from None


def url_port(url: str) -> int:
    """The port of a control API URL (80 when it names none)."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    try:
        port = parts.port
    except ValueError:
        port = None
    return port if port is not None else (443 if parts.scheme == "https" else 80)


def find_token(server: str, env: Mapping[str, str] | None = None) -> str | None:
    """The token for the control API at ``server``: ``$ZEROSERVE_TOKEN``, else the file of
    its port; None if neither exists."""
    env = os.environ if env is None else env
    given = env.get(CLIENT_TOKEN_ENV, "")
    if given:
        return given
    return read_token_file(url_port(server), env)


def headers(token: str | None) -> dict[str, str]:
    """The ``Authorization`` header carrying ``token`` (none for None)."""
    return {} if not token else {"Authorization": f"{SCHEME} {token}"}


def child_token(env: Mapping[str, str] | None = None) -> str | None:
    """The token a child of ``zeroserve up`` was given (``$ZEROSERVE_CONTROL_TOKEN``)."""
    env = os.environ if env is None else env
    return env.get(TOKEN_ENV) or None


def authorized(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header value carries ``token`` (constant-time)."""
    if not header:
        return False
    scheme, _, given = header.strip().partition(" ")
    if scheme.lower() != SCHEME.lower():
        return False
    return hmac.compare_digest(given.strip().encode(errors="replace"), token.encode())


def os_user() -> str:
    """The name of the user this process runs as (the owner of the control API, and so
    the user behind every apply): the creator/lastModifier of what it applies."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a uid with no passwd entry (containers)
        return str(os.getuid())
