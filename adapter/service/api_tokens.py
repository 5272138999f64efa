"""Inbound bearer tokens (OLIGO_API_TOKENS): only SHA-256 digests are kept, compared in constant time.

Each comma-separated entry is a token or `sha256:HEX` (its digest, so the configuration need not hold the
secret); `;read` after it limits the token to GET requests.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from .config import ConfigError

READ, WRITE = "read", "write"


@dataclass(frozen=True)
class ApiToken:
    digest: bytes
    scope: str


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def parse_tokens(text: str) -> tuple[ApiToken, ...]:
    tokens = []
    for number, raw in enumerate(filter(None, (part.strip() for part in text.split(","))), start=1):
        secret, _, scope = raw.partition(";")
        scope = scope.strip() or WRITE
        if scope not in (READ, WRITE):
            raise ConfigError(f"api token {number}: scope {scope!r}; use read or write")
        if secret.startswith("sha256:"):
            try:
                value = bytes.fromhex(secret.removeprefix("sha256:"))
            except ValueError:
                value = b""
            if len(value) != 32:
                raise ConfigError(f"api token {number}: sha256: must be followed by 64 hex digits")
        else:
            value = digest(secret.strip())
        tokens.append(ApiToken(value, scope))
    return tuple(tokens)


def match(tokens: tuple[ApiToken, ...], presented: str) -> ApiToken | None:
    """The configured token equal to the presented one; every entry is compared, in constant time."""
    wanted = digest(presented)
    found = None
    for token in tokens:
        if hmac.compare_digest(token.digest, wanted):
            found = token
    return found
