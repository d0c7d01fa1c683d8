"""Token primitives: generation, keyed hashing, constant-time checks. No database here.

A token reads `kbm_<key_id>_<secret>`. The prefix makes a leaked token easy to recognise (secret
scanners, logs); the key id is stored in clear and indexed, so a check is one lookup instead of a
scan over every hash; only HMAC-SHA256(token key, key id + secret) is stored, so a copy of the
database does not yield usable tokens. The secret has 256 bits of entropy, so a fast keyed hash is
enough: a slow password hash would only make every request slower.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from app.core.config import Settings

TOKEN_PREFIX = "kbm"
# Used only when KBMAP_TOKEN_KEY is empty, which Settings refuses in production. It is public, so
# outside production the stored hashes are as strong as plain SHA-256 of a 256-bit secret: still
# not reversible, but a production database must be given its own key.
DEV_TOKEN_KEY = "kbmap-development-token-key-not-secret"

_KEY_ID_HEX_BYTES = 6  # 12 hex characters: never contains "_", so parsing is unambiguous
_SECRET_BYTES = 32
_MAX_TOKEN_CHARS = 200  # anything longer is refused before hashing


@dataclass(frozen=True)
class ParsedToken:
    key_id: str
    secret: str


def new_token() -> tuple[str, ParsedToken]:
    """A fresh token string and its parts; the string is shown to the user once, never stored."""
    parts = ParsedToken(
        key_id=secrets.token_hex(_KEY_ID_HEX_BYTES), secret=secrets.token_urlsafe(_SECRET_BYTES)
    )
    return f"{TOKEN_PREFIX}_{parts.key_id}_{parts.secret}", parts


def parse_token(token: str) -> ParsedToken | None:
    """Split a presented token; None when it cannot be one of ours (callers still hash a dummy)."""
    if len(token) > _MAX_TOKEN_CHARS:
        return None
    prefix, _, rest = token.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != TOKEN_PREFIX or len(key_id) != 2 * _KEY_ID_HEX_BYTES or not secret:
        return None
    if any(c not in "0123456789abcdef" for c in key_id):
        return None
    return ParsedToken(key_id=key_id, secret=secret)


def token_key(settings: Settings) -> bytes:
    """The HMAC key: KBMAP_TOKEN_KEY, or the public development key when it is empty."""
    return (settings.token_key or DEV_TOKEN_KEY).encode()


def hash_secret(key: bytes, key_id: str, secret: str) -> str:
    """HMAC-SHA256 over key id and secret, so a hash cannot be moved to another key id."""
    return hmac.new(key, f"{key_id}:{secret}".encode(), hashlib.sha256).hexdigest()


def secret_matches(key: bytes, parsed: ParsedToken, stored_hash: str) -> bool:
    """Constant-time comparison of the presented secret against a stored hash."""
    return hmac.compare_digest(hash_secret(key, parsed.key_id, parsed.secret), stored_hash)


# A hash no secret produces in practice; compared against when the key id is unknown or the token
# is malformed, so those cases cost the same HMAC and compare as a wrong secret.
_DUMMY_HASH = "0" * 64


def dummy_check(key: bytes, parsed: ParsedToken | None) -> bool:
    """Spend the time of a real check and fail; keeps unknown and wrong tokens indistinguishable."""
    probe = parsed or ParsedToken(key_id="0" * 2 * _KEY_ID_HEX_BYTES, secret="")
    secret_matches(key, probe, _DUMMY_HASH)
    return False


# Scopes nest: admin implies write, write implies read. The order of this tuple is the ranking.
SCOPES = ("read", "write", "admin")


def scope_allows(granted: list[str], needed: str) -> bool:
    """True when any granted scope ranks at or above the needed one; unknown names grant nothing."""
    rank = SCOPES.index(needed)
    return any(s in SCOPES and SCOPES.index(s) >= rank for s in granted)
