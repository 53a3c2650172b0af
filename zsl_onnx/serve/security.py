"""Who may call the server: loopback by default; any other address needs a key or an explicit
``--trusted-network``. The key comes from a file or an environment variable, never the
command line (where ``ps`` would show it)."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

__all__ = ["SecurityError", "is_loopback", "resolve_api_key"]

MIN_KEY_LENGTH = 16


class SecurityError(Exception):
    """A start-up refusal: the message is the one line the command prints."""


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback address (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def resolve_api_key(host: str, *, key_file: str | None, key_env: str | None, trusted_network: bool) -> str | None:
    """The API key clients must send, or None; refuses a non-loopback bind with neither key nor trust."""
    if key_file is not None and key_env is not None:
        raise SecurityError("pass --api-key-file or --api-key-env, not both")
    key = _read_key(key_file, key_env)
    if key is None and not trusted_network and not is_loopback(host):
        raise SecurityError(
            f"--host {host} is reachable from other machines: give clients a key with --api-key-file "
            "or --api-key-env, or pass --trusted-network if every machine that can reach it may use it"
        )
    return key


def _read_key(key_file: str | None, key_env: str | None) -> str | None:
    if key_file is not None:
        try:
            key = Path(key_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise SecurityError(f"cannot read --api-key-file {key_file}: {exc.__class__.__name__}: {exc}") from None
        where = f"--api-key-file {key_file}"
    elif key_env is not None:
        key = os.environ.get(key_env, "").strip()
        where = f"environment variable {key_env} (--api-key-env)"
    else:
        return None
    if len(key) < MIN_KEY_LENGTH or any(char.isspace() or not char.isprintable() for char in key):
        raise SecurityError(
            f"the API key in {where} must be at least {MIN_KEY_LENGTH} printable characters without spaces "
            "(e.g. the output of: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    if not key.isascii():
        raise SecurityError(f"the API key in {where} must be ASCII (it travels in an HTTP header)")
    return key
