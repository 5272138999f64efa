"""Service settings (file < environment < options) and inbound API tokens (hashed, scoped)."""

from __future__ import annotations

import hashlib
import re

import pytest
from typer.testing import CliRunner

from adapter.cli import app
from adapter.service import api_tokens
from adapter.service.config import ConfigError, Settings


def test_file_then_environment_then_options(tmp_path):
    config = tmp_path / "oligo.toml"
    config.write_text('database = "from-file.sqlite3"\npreset = "weickhardt-2012"\ndelivery_max_attempts = 7\n'
                      'ehr_base_url = "https://ehr.example/fhir"\n')
    environ = {"OLIGO_CONFIG": str(config), "OLIGO_PRESET": "single-site", "OLIGO_ALLOW_ANONYMOUS": "yes"}
    settings = Settings.load(environ=environ, database="from-option.sqlite3")
    assert (settings.database, settings.preset, settings.delivery_max_attempts) == (
        "from-option.sqlite3", "single-site", 7)
    assert settings.allow_anonymous is True and settings.ehr_base_url == "https://ehr.example/fhir"


@pytest.mark.parametrize(("text", "message"), [
    ("nonsense = 1\n", "unknown setting(s) nonsense"),
    ("delivery_max_attempts = \"many\"\n", "delivery_max_attempts = 'many': expected int"),
    ("ehr_base_url = \"https://ehr\"\nehr_auth = \"smart\"\n", "ehr_auth = smart needs smart_token_url"),
    ("ehr_base_url = \"https://ehr\"\nehr_auth = \"bearer\"\n", "ehr_auth = bearer needs ehr_token"),
    ("ehr_auth = \"basic\"\n", "ehr_auth 'basic': use one of none, bearer, smart"),
    ("database = [\n", "not valid TOML"),
])
def test_bad_settings_are_named(tmp_path, text, message):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        Settings.load(config, environ={})


def test_tokens_are_kept_as_digests_and_compared_whole():
    secret = "s3cret-token"
    tokens = api_tokens.parse_tokens(f"sha256:{hashlib.sha256(secret.encode()).hexdigest()}, reader-token;read")
    assert [t.scope for t in tokens] == ["write", "read"]
    assert all(t.digest != secret.encode() for t in tokens)
    assert api_tokens.match(tokens, secret).scope == "write"
    assert api_tokens.match(tokens, "reader-token").scope == "read"
    assert api_tokens.match(tokens, secret[:-1]) is None
    with pytest.raises(ConfigError, match="64 hex digits"):
        api_tokens.parse_tokens("sha256:abc")
    with pytest.raises(ConfigError, match="scope 'admin'"):
        api_tokens.parse_tokens("token;admin")


def test_serve_refuses_to_start_without_tokens(tmp_path, monkeypatch):
    monkeypatch.delenv("OLIGO_API_TOKENS", raising=False)
    monkeypatch.delenv("OLIGO_ALLOW_ANONYMOUS", raising=False)
    monkeypatch.delenv("OLIGO_CONFIG", raising=False)
    result = CliRunner().invoke(app, ["serve", "--port", "9", "--database", str(tmp_path / "s.sqlite3")])
    assert result.exit_code == 2 and "no API tokens configured" in result.stderr
