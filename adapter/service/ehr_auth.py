"""Outbound authentication to the EHR's FHIR server: none, a static bearer token, or SMART Backend
Services (OAuth 2.0 client-credentials grant with a JWT client assertion signed by our private key;
the access token is cached until shortly before it expires)."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import httpx
import jwt

from .config import ConfigError, Settings

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME_SECONDS = 300  # SMART Backend Services: no more than five minutes
EXPIRY_MARGIN_SECONDS = 30  # a cached token is renewed this long before it expires


class AuthFailure(Exception):
    """The token endpoint refused or could not be reached; the delivery is retried later."""


class NoAuth:
    def headers(self, client: httpx.Client) -> dict:
        return {}

    def invalidate(self) -> None:
        pass


class StaticBearer(NoAuth):
    def __init__(self, token: str):
        self._token = token

    def headers(self, client: httpx.Client) -> dict:
        return {"Authorization": f"Bearer {self._token}"}


class SmartBackendServices(NoAuth):
    def __init__(self, token_url: str, client_id: str, private_key: str, *, key_id: str = "",
                 algorithm: str = "RS384", scope: str = "system/*.write"):
        self.token_url, self.client_id, self.scope = token_url, client_id, scope
        self._key, self._key_id, self._algorithm = private_key, key_id, algorithm
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def assertion(self) -> str:
        now = int(time.time())
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": self.token_url, "iat": now,
                  "exp": now + ASSERTION_LIFETIME_SECONDS, "jti": uuid.uuid4().hex}
        headers = {"typ": "JWT"} | ({"kid": self._key_id} if self._key_id else {})
        return jwt.encode(claims, self._key, algorithm=self._algorithm, headers=headers)

    def headers(self, client: httpx.Client) -> dict:
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires:
                self._fetch(client)
            return {"Authorization": f"Bearer {self._token}"}

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def _fetch(self, client: httpx.Client) -> None:
        form = {"grant_type": "client_credentials", "scope": self.scope,
                "client_assertion_type": CLIENT_ASSERTION_TYPE, "client_assertion": self.assertion()}
        try:
            response = client.post(self.token_url, data=form, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise AuthFailure(f"token endpoint {self.token_url}: {exc.__class__.__name__}: {exc}") from None
        if response.status_code != 200:
            raise AuthFailure(f"token endpoint {self.token_url} answered {response.status_code}: "
                              f"{response.text[:200]}")
        try:
            body = response.json()
            token = str(body["access_token"])
            lifetime = float(body.get("expires_in", 300))
        except (ValueError, KeyError, TypeError):
            raise AuthFailure(f"token endpoint {self.token_url}: no access_token in its answer") from None
        self._token = token
        self._expires = time.monotonic() + max(0.0, lifetime - EXPIRY_MARGIN_SECONDS)


def ehr_auth(settings: Settings) -> NoAuth:
    if settings.ehr_auth == "bearer":
        return StaticBearer(settings.ehr_token)
    if settings.ehr_auth == "smart":
        try:
            key = Path(settings.smart_private_key_file).read_text()
        except OSError as exc:
            raise ConfigError(f"smart_private_key_file {settings.smart_private_key_file}: cannot be read "
                              f"({exc.strerror or exc})") from None
        return SmartBackendServices(settings.smart_token_url, settings.smart_client_id, key,
                                    key_id=settings.smart_key_id, algorithm=settings.smart_algorithm,
                                    scope=settings.smart_scope)
    return NoAuth()
