"""A credential that reads a bearer token some other process keeps in a file.

For deployments where a sidecar, a CI step or a person drops a token into a file
(`az account get-access-token --query accessToken -o tsv > token`). The file
holds one token, so the requested scope is not used: whoever writes the file
chooses the audience. Two formats are accepted:

* a raw JWT (`header.payload.signature`): its `exp` claim is the expiry;
* JSON `{"access_token": ..., "expires_on": ...}` (`accessToken` is accepted too,
  as `az account get-access-token -o json` writes it); `expires_on` is epoch
  seconds (number or numeric string) or an ISO 8601 time with a UTC offset. If it
  is absent and the token is a JWT, the JWT's `exp` is used.

The file is re-read only when its (mtime, size, inode) signature changes, so the
writer can replace it at any time (atomically, by rename, ideally) and the next
request sees the new token, while unchanged files cost one `stat`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from azure.core.credentials import AccessToken

from core.auth.errors import CredentialConfigurationError, CredentialError
from core.logging.error_text import error_text

__all__ = ["TokenFileCredential", "jwt_expiry", "parse_token_document"]


class _FileSignature(NamedTuple):
    mtime_ns: int
    size: int
    inode: int


def jwt_expiry(token: str) -> float | None:
    """The `exp` claim (epoch seconds) of `token` if it is a JWT that has one, else None.

    The signature is not checked: the token is only passed on, never trusted here.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
        return None
    return float(exp)


def parse_token_document(text: str) -> tuple[str, float]:
    """(token, expiry in epoch seconds) from a token file's text; ValueError says what is wrong."""
    text = text.strip()
    if not text:
        raise ValueError("the file is empty")
    if text.startswith("{"):
        return _parse_json_document(text)
    expiry = jwt_expiry(text)
    if expiry is None:
        raise ValueError("it is neither JSON nor a JWT with an `exp` claim")
    return text, expiry


def _parse_json_document(text: str) -> tuple[str, float]:
    try:
        document = json.loads(text)
    except ValueError:
        raise ValueError("it starts with '{' but is not valid JSON") from None
    token = document.get("access_token", document.get("accessToken"))
    if not isinstance(token, str) or not token:
        raise ValueError("its JSON has no `access_token` string")
    if "expires_on" in document:
        return token, _epoch_seconds(document["expires_on"])
    expiry = jwt_expiry(token)
    if expiry is None:
        raise ValueError("its JSON has no `expires_on` and the token is not a JWT with `exp`")
    return token, expiry


def _epoch_seconds(value: Any) -> float:
    seconds = _seconds_from(value)
    if seconds is None:
        raise ValueError("`expires_on` must be epoch seconds or an ISO 8601 time")
    if not math.isfinite(seconds):
        raise ValueError(f"`expires_on` {value!r} is not a finite number")
    return seconds


def _seconds_from(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:
            return math.inf
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"`expires_on` {value!r} is not epoch seconds nor ISO 8601") from None
        if moment.tzinfo is None:
            raise ValueError(f"`expires_on` {value!r} has no UTC offset; its zone is ambiguous")
        return moment.timestamp()
    return None


class TokenFileCredential:
    """An azure-core style credential whose token comes from a file (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        self._signature: _FileSignature | None = None
        self._token: AccessToken | None = None

    def has_changed(self) -> bool:
        """True when the file differs from what was last read (or was never read)."""
        try:
            signature = self._stat()
        except OSError:
            return True
        with self._lock:
            return signature != self._signature

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        """The file's token (re-read if the file changed); `scopes` and options are not used."""
        with self._lock:
            signature = self._read_signature()
            if self._token is not None and signature == self._signature:
                return self._token
            token, expiry = self._read_document()
            self._token = AccessToken(token, int(expiry))
            self._signature = signature
            return self._token

    def _stat(self) -> _FileSignature:
        status = self._path.stat()
        return _FileSignature(status.st_mtime_ns, status.st_size, status.st_ino)

    def _read_signature(self) -> _FileSignature:
        try:
            return self._stat()
        except FileNotFoundError:
            raise CredentialError(
                f"token file {self._path} does not exist: check AZURE_TOKEN_FILE, and that the "
                "process which writes the token has run"
            ) from None
        except OSError as exc:
            raise self._unreadable(exc) from exc

    def _read_document(self) -> tuple[str, float]:
        try:
            text = self._path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise CredentialError(
                f"token file {self._path} is not UTF-8 text: write the raw JWT or a JSON object"
            ) from None
        except OSError as exc:
            raise self._unreadable(exc) from exc
        try:
            return parse_token_document(text)
        except ValueError as exc:
            raise CredentialError(
                f"token file {self._path} holds no usable token: {error_text(exc)}. "
                "Write the raw JWT, or "
                'JSON {"access_token": "...", "expires_on": <epoch seconds>}'
            ) from None

    def _unreadable(self, exc: OSError) -> CredentialConfigurationError:
        return CredentialConfigurationError(
            f"token file {self._path} cannot be read ({exc.strerror or type(exc).__name__}): "
            "give this process read access to it"
        )

    def __repr__(self) -> str:
        return f"TokenFileCredential(path={str(self._path)!r})"
