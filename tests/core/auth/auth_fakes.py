"""Test doubles for core.auth: unsigned JWTs whose claims a test chooses.

(The fake `az` and the hand-moved clocks are shared: tests/support/fake_az.py, clocks.py.)
"""

from __future__ import annotations

import base64
import json


def make_jwt(claims: dict[str, object]) -> str:
    """An unsigned JWT-shaped string with `claims` as its payload."""

    def segment(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{segment({'alg': 'RS256', 'typ': 'JWT'})}.{segment(claims)}.c2lnbmF0dXJl"
