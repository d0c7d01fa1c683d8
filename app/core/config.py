"""Settings: the one place configuration is read (KBMAP_ environment variables, optional .env).

`get_settings()` is cached for the process; the app and CLI receive a Settings object explicitly,
so tests build their own without touching the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    max_json_depth: int = 64
    max_rules: int = 200_000
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
    download_timeout: float = 30.0
    download_retries: int = 3
    limits: Limits = Field(default_factory=Limits)
    coverage: CoverageWeights = Field(default_factory=CoverageWeights)
    # app/kb is a link to the checkout's kb/ and a real folder in a wheel: one path for both.
    kb_dir: Path = Path(__file__).resolve().parents[1] / "kb"

    @model_validator(mode="after")
    def _check_safe(self) -> Settings:
        if self.environment == "production" and not self.token_key:
            raise ValueError("KBMAP_TOKEN_KEY must be set in production")
        return self

    @property
    def reads_need_token(self) -> bool:
        """Reads are open on loopback by default and need a token anywhere else."""
        if self.read_auth is not None:
            return self.read_auth == "required"
        return self.host not in ("127.0.0.1", "localhost", "::1")


@lru_cache
def get_settings() -> Settings:
    return Settings()
