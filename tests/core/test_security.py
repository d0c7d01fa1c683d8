"""Token primitives: format, parsing, keyed hashing, scope ranking."""

from __future__ import annotations

import pytest

from app.core import security
from app.core.config import Settings


def test_new_token_has_prefix_key_id_and_secret() -> None:
    token, parts = security.new_token()
    assert token == f"kbm_{parts.key_id}_{parts.secret}"
    assert len(parts.key_id) == 12 and len(parts.secret) >= 43
    assert security.parse_token(token) == parts
    assert security.new_token()[0] != token


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "kbm_",
        "kbm_abc_secret",
        "xyz_0123456789ab_secret",
        "kbm_0123456789AB_s",
        "kbm_0123456789ab_",
        "Bearer kbm_0123456789ab_s",
        "kbm_0123456789ab_" + "s" * 300,
    ],
)
def test_malformed_tokens_do_not_parse(raw: str) -> None:
    assert security.parse_token(raw) is None


def test_secret_may_contain_underscores() -> None:
    parsed = security.parse_token("kbm_0123456789ab_a_b-c")
    assert parsed == security.ParsedToken(key_id="0123456789ab", secret="a_b-c")


def test_hash_is_keyed_and_bound_to_the_key_id() -> None:
    a = security.hash_secret(b"k1", "0123456789ab", "s")
    assert a != security.hash_secret(b"k2", "0123456789ab", "s")
    assert a != security.hash_secret(b"k1", "ba9876543210", "s")
    parsed = security.ParsedToken(key_id="0123456789ab", secret="s")
    assert security.secret_matches(b"k1", parsed, a)
    assert not security.secret_matches(b"k2", parsed, a)


def test_token_key_falls_back_to_the_dev_key_outside_production() -> None:
    assert security.token_key(Settings(token_key="")) == security.DEV_TOKEN_KEY.encode()
    assert security.token_key(Settings(token_key="abc")) == b"abc"
    with pytest.raises(ValueError, match="KBMAP_TOKEN_KEY"):
        Settings(environment="production", token_key="")


@pytest.mark.parametrize(
    ("granted", "needed", "allowed"),
    [
        (["read"], "read", True),
        (["read"], "write", False),
        (["write"], "read", True),
        (["write"], "admin", False),
        (["admin"], "write", True),
        (["admin"], "read", True),
        ([], "read", False),
        (["root"], "read", False),
    ],
)
def test_scopes_nest(granted: list[str], needed: str, allowed: bool) -> None:
    assert security.scope_allows(granted, needed) is allowed
