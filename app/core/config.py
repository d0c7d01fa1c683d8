"""Settings: the one place configuration is read (KBMAP_ environment variables, optional .env).

`get_settings()` is cached for the process; the app and CLI receive a Settings object explicitly,
so tests build their own without touching the environment.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from app.core.errors import InvalidInput

MITRE_INDEX_URL = (
    "https://raw.githubusercontent.com/mitre-attack/attack-stix-data/master/index.json"
)


class Limits(BaseSettings):
    """Bounds on every input we read; each violation is a 413/422, never a crash."""

    model_config = SettingsConfigDict(env_prefix="KBMAP_LIMIT_", extra="ignore")

    max_bundle_bytes: int = 300 * 1024 * 1024  # uncompressed STIX bundle
    max_upload_bytes: int = 50 * 1024 * 1024  # one uploaded catalog file
    max_archive_members: int = 20_000
    max_archive_bytes: int = 200 * 1024 * 1024  # all members, uncompressed
    max_member_bytes: int = 5 * 1024 * 1024  # one member, uncompressed
    max_yaml_aliases: int = 100
    max_toml_depth: int = 32  # nested tables and arrays in one Elastic rule file
    max_rule_id_chars: int = 200  # longer rule ids are cut at import, with a warning
    max_rule_title_chars: int = 500  # rule names and titles, likewise
    max_json_depth: int = 64
    max_rules: int = 200_000
    max_environment_sources: int = 100_000  # (system, log source) rows of one environment
    max_page: int = 1000


class CoverageWeights(BaseSettings):
    """Documented in the README; override with KBMAP_COVERAGE_STATUS / _LEVEL / _CAP (JSON)."""

    model_config = SettingsConfigDict(env_prefix="KBMAP_COVERAGE_", extra="ignore")

    status: dict[str, float] = Field(
        default_factory=lambda: {
            "stable": 1.0,
            "production": 1.0,
            "test": 0.8,
            "experimental": 0.6,
            "development": 0.6,
            "deprecated": 0.0,
            "unsupported": 0.0,
        }
    )
    level: dict[str, float] = Field(
        default_factory=lambda: {
            "critical": 1.0,
            "high": 1.0,
            "medium": 0.8,
            "low": 0.6,
            "informational": 0.3,
        }
    )
    unknown_status: float = 1.0
    unknown_level: float = 0.8
    cap: float = 3.0


MIN_TOKEN_KEY_BYTES = 32
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class Settings(BaseSettings):
    """Runtime configuration; refuses unsafe combinations outside development."""

    model_config = SettingsConfigDict(env_prefix="KBMAP_", env_file=".env", extra="ignore")

    environment: Literal["development", "production", "test"] = "development"
    database_url: str = "sqlite:///./data/kbmap.sqlite"
    attack_source: str = MITRE_INDEX_URL
    host: str = "127.0.0.1"
    port: int = 8000
    read_auth: Literal["required", "open"] | None = None
    token_key: str = ""
    # Host names requests may carry, comma-separated ("*": any); default: loopback names and the
    # addresses bound. Links in layers point at public_url (default: the address reached).
    allowed_hosts: str | None = None
    public_url: str | None = Field(default=None, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
    audit_retention_days: int | None = Field(default=365, ge=1)  # None keeps every event
    # snapshots older than this many days are thinned (one a day, then one a week past twice
    # as old); None keeps every snapshot
    history_keep_days: int | None = Field(default=None, ge=1)
    audit_denied_per_client: int = Field(default=10, ge=0)  # denied events kept per minute
    audit_denied_per_minute: int = Field(default=100, ge=0)  # from all clients together
    download_timeout: float = Field(default=30.0, gt=0)  # longest silence of one read
    download_retries: int = Field(default=3, ge=0)
    download_deadline: float = Field(default=600.0, gt=0)  # one whole download, retries included
    # `kbmap refresh --taxii --user NAME`: the password, never an argument (shell history, ps)
    taxii_password: SecretStr | None = None
    # `POST /api/v1/refresh {"source": "taxii"}` reads this server only: a request never names
    # the address the service fetches (a write token must not turn it into a proxy)
    taxii_url: str | None = Field(default=None, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
    taxii_user: str | None = Field(default=None, max_length=200)
    limits: Limits = Field(default_factory=Limits)
    coverage: CoverageWeights = Field(default_factory=CoverageWeights)
    # app/kb is a link to the checkout's kb/ and a real folder in a wheel: one path for both.
    kb_dir: Path = Path(__file__).resolve().parents[1] / "kb"

    @model_validator(mode="after")
    def _check_safe(self) -> Settings:
        if self.environment != "production":
            return self
        if not self.token_key:
            raise ValueError("KBMAP_TOKEN_KEY must be set in production")
        if len(self.token_key.encode()) < MIN_TOKEN_KEY_BYTES:
            raise ValueError(
                f"KBMAP_TOKEN_KEY must be at least {MIN_TOKEN_KEY_BYTES} bytes in production"
            )
        if self.read_auth == "open" and self.host.lower() not in LOOPBACK_HOSTS:
            raise ValueError(
                f"KBMAP_READ_AUTH=open would serve reads without a token on {self.host}; "
                "production allows that on loopback only"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    """The process's settings from the environment; a bad value is InvalidInput naming its
    variable (one line on the CLI), never pydantic's traceback. The value is not echoed: it may
    be a key."""
    try:
        return Settings()
    except ValidationError as exc:
        raise setting_error(exc) from None
    except SettingsError as exc:  # a JSON setting that is not JSON
        raise setting_error(exc) from None


_PREFIXES: dict[str, tuple[str, type[BaseSettings]]] = {
    "Settings": ("KBMAP_", Settings),
    "Limits": ("KBMAP_LIMIT_", Limits),
    "CoverageWeights": ("KBMAP_COVERAGE_", CoverageWeights),
}


def setting_error(exc: ValidationError | SettingsError) -> InvalidInput:
    """The first problem of a settings error, under its environment variable's name."""
    if isinstance(exc, SettingsError):
        found = re.search(r'field "(\w+)"', str(exc))
        field = found.group(1) if found else ""
        prefix = next((p for p, m in _PREFIXES.values() if field in m.model_fields), "KBMAP_")
        var = f"{prefix}{field.upper()}"
        return InvalidInput(f"bad setting {var}: not valid JSON")
    first = exc.errors()[0]
    message = first["msg"].removeprefix("Value error, ")
    if not first["loc"]:  # a check across settings names its variables itself
        return InvalidInput(f"bad setting: {message}")
    prefix = _PREFIXES.get(exc.title, ("KBMAP_", Settings))[0]
    var = prefix + "_".join(str(p) for p in first["loc"]).upper()
    return InvalidInput(f"bad setting {var}: {message}")
