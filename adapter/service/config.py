"""Service settings: environment variables (OLIGO_*), an optional TOML file, then command-line options,
each overriding the one before. README.md ("Operating the service") lists every key."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from ..assess import DEFAULT_PRESET
from ..sources.limits import DEFAULT_LIMITS, ReadLimits

EHR_AUTH_MODES = ("none", "bearer", "smart")


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the setting and the reason."""


@dataclass(frozen=True)
class Settings:
    database: str = "oligo.sqlite3"
    sqlite_synchronous: str = "normal"  # full: every commit synced to disk (power-loss safe, ~10 ms a commit)
    api_tokens: str = ""  # comma-separated; each SECRET or sha256:HEX, optionally ";read" (GET only)
    allow_anonymous: bool = False  # no api_tokens and this false: the service refuses to start
    max_body_bytes: int = 64 * 1024 * 1024
    max_tree_depth: int = DEFAULT_LIMITS.max_tree_depth  # SR content tree levels
    max_content_items: int = DEFAULT_LIMITS.max_content_items  # SR content items
    max_json_depth: int = DEFAULT_LIMITS.max_json_depth  # FHIR JSON nesting
    max_json_array_items: int = DEFAULT_LIMITS.max_json_array_items  # FHIR JSON array length
    request_timeout_seconds: float = 60.0  # a request body must have arrived within this (else 408)
    keep_alive_seconds: float = 5.0  # idle keep-alive connections are closed after this
    workers: int = 1  # oligo serve: processes sharing the port and the store
    tls_certfile: str = ""  # PEM certificate (chain); set together with tls_keyfile: HTTPS
    tls_keyfile: str = ""  # PEM private key
    preset: str = DEFAULT_PRESET
    ehr_base_url: str = ""  # set: every new assessment is delivered there
    ehr_auth: str = "none"  # none | bearer | smart
    ehr_token: str = ""  # static bearer token (ehr_auth = bearer)
    smart_token_url: str = ""
    smart_client_id: str = ""
    smart_private_key_file: str = ""  # PEM (RSA for RS384, EC P-384 for ES384)
    smart_key_id: str = ""
    smart_algorithm: str = "RS384"
    smart_scope: str = "system/*.write"
    delivery_poll_seconds: float = 5.0
    delivery_backoff_seconds: float = 2.0
    delivery_backoff_max_seconds: float = 600.0
    delivery_max_attempts: int = 50
    delivery_timeout_seconds: float = 30.0
    delivery_lease_seconds: float = 120.0
    assessment_delay_seconds: float = 0.5  # a patient is assessed once no report of it arrived for this long
    assessment_max_delay_seconds: float = 10.0  # ... but while reports keep coming, it waits at most this long
    assessment_poll_seconds: float = 5.0
    assessment_lease_seconds: float = 60.0  # a patient being assessed is that process's for this long
    assessment_retry_seconds: float = 30.0  # a failed assessment is tried again after this, doubling to an hour
    listen_ae_title: str = "OLIGO"  # oligo listen: our AE title (associations addressed to another are rejected)
    listen_allowed_aets: str = ""  # comma-separated calling AE titles let in; empty: any
    listen_max_associations: int = 10
    listen_acse_timeout: float = 30.0
    listen_dimse_timeout: float = 60.0
    listen_network_timeout: float = 60.0

    @classmethod
    def load(cls, config_file: str | os.PathLike | None = None, environ: Mapping[str, str] | None = None,
             **overrides) -> Settings:
        """Defaults < config file (OLIGO_CONFIG or the argument) < OLIGO_* variables < overrides."""
        environ = os.environ if environ is None else environ
        values: dict = {}
        config_file = config_file or environ.get("OLIGO_CONFIG")
        if config_file:
            values |= _from_file(Path(config_file))
        for field in fields(cls):
            name = f"OLIGO_{field.name.upper()}"
            if name in environ:
                values[field.name] = environ[name]
        values |= {k: v for k, v in overrides.items() if v is not None}
        settings = cls(**{f.name: _coerce(f, values[f.name]) for f in fields(cls) if f.name in values})
        settings.check()
        return settings

    def check(self) -> None:
        if self.ehr_auth not in EHR_AUTH_MODES:
            raise ConfigError(f"ehr_auth {self.ehr_auth!r}: use one of {', '.join(EHR_AUTH_MODES)}")
        if self.ehr_base_url and self.ehr_auth == "bearer" and not self.ehr_token:
            raise ConfigError("ehr_auth = bearer needs ehr_token")
        if self.ehr_base_url and self.ehr_auth == "smart":
            missing = [n for n in ("smart_token_url", "smart_client_id", "smart_private_key_file")
                       if not getattr(self, n)]
            if missing:
                raise ConfigError(f"ehr_auth = smart needs {', '.join(missing)}")
        if self.max_body_bytes <= 0 or self.delivery_max_attempts <= 0 or self.workers <= 0:
            raise ConfigError("max_body_bytes, delivery_max_attempts and workers must be positive")
        for name in ("max_tree_depth", "max_content_items", "max_json_depth", "max_json_array_items",
                     "request_timeout_seconds", "keep_alive_seconds", "assessment_poll_seconds",
                     "assessment_lease_seconds", "assessment_retry_seconds"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} = {getattr(self, name)!r}: must be positive")
        if not 0 <= self.assessment_delay_seconds <= self.assessment_max_delay_seconds:
            raise ConfigError(f"assessment_delay_seconds = {self.assessment_delay_seconds!r} and "
                              f"assessment_max_delay_seconds = {self.assessment_max_delay_seconds!r}: need "
                              "0 <= delay <= maximum delay")
        if bool(self.tls_certfile) != bool(self.tls_keyfile):
            raise ConfigError("tls_certfile and tls_keyfile go together: set both for HTTPS, or neither")
        self._check_listener()

    def read_limits(self) -> ReadLimits:
        """The bounds every received document is read under."""
        return ReadLimits(self.max_tree_depth, self.max_content_items, self.max_json_depth,
                          self.max_json_array_items)

    def store_options(self) -> dict:
        """Store.open's keyword arguments for these settings."""
        return {"preset": self.preset, "delivery_target": self.ehr_base_url or None, "limits": self.read_limits(),
                "lease_seconds": self.assessment_lease_seconds, "retry_seconds": self.assessment_retry_seconds,
                "sqlite_synchronous": self.sqlite_synchronous}

    def _check_listener(self) -> None:
        for title in [self.listen_ae_title, *self.allowed_calling_aets()]:
            if not title or len(title) > 16 or "\\" in title or not title.isprintable():
                raise ConfigError(f"AE title {title!r}: 1 to 16 printable characters without backslash")
        if self.listen_max_associations <= 0:
            raise ConfigError("listen_max_associations must be positive")
        if min(self.listen_acse_timeout, self.listen_dimse_timeout, self.listen_network_timeout) <= 0:
            raise ConfigError("listen_acse_timeout, listen_dimse_timeout and listen_network_timeout must be positive")

    def allowed_calling_aets(self) -> tuple[str, ...]:
        return tuple(t.strip() for t in self.listen_allowed_aets.split(",") if t.strip())

    def replace(self, **changes) -> Settings:
        return dataclasses.replace(self, **changes)


def _from_file(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot be read ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: not valid TOML ({exc})") from None
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(unknown)}")
    return data


def _coerce(field: dataclasses.Field, value):
    kind = field.type
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text not in ("1", "0", "true", "false", "yes", "no", "on", "off", ""):
                raise ValueError(value)
            return text in ("1", "true", "yes", "on")
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{field.name} = {value!r}: expected {kind}") from None
