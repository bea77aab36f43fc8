"""The operator's secret: issued by `meterline token operator`, kept in the home as a hash.

Only the SHA-256 of the secret is stored (``$METERLINE_HOME/access/operator.json``, mode 0600 in
a 0700 folder, written atomically); issuing again replaces it, so the old secret stops working
at once: the server reads the file on every request. A request proves it holds the secret with
``Authorization: Bearer <secret>`` or the cookie the login form sets; hashes are compared in
constant time. No file: no secret can be right (the operator pages are never open by default)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from orchestration.lib import clock
from orchestration.lib.settings import Settings
from orchestration.web import private_files

#: the operator secret's prefix (a secret scanner, or a person, can tell what it is)
PREFIX = "mlo_"
#: the cookie the login form sets (HttpOnly, SameSite=Strict)
COOKIE = "meterline_operator"
#: the longest secret worth hashing (a real one is 47 characters)
MAX_SECRET_CHARS = 512


def access_dir(cfg: Settings) -> Path:
    return cfg.home / "access"


def operator_token_path(cfg: Settings) -> Path:
    return access_dir(cfg) / "operator.json"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Issued:
    secret: str
    path: Path
    issued_at: str
    replaced: bool


def issue_operator_token(cfg: Settings) -> Issued:
    """A new operator secret; its hash replaces any earlier one (a rotation)."""
    folder = access_dir(cfg)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    path = operator_token_path(cfg)
    replaced = path.exists()
    secret = PREFIX + secrets.token_urlsafe(32)
    issued_at = clock.now().isoformat(timespec="seconds")
    body = json.dumps({"role": "operator", "sha256": _digest(secret), "issued_at": issued_at},
                      indent=2) + "\n"
    private_files.write(path, body)
    return Issued(secret=secret, path=path, issued_at=issued_at, replaced=replaced)


def operator_token_hash(cfg: Settings) -> str | None:
    """The stored hash, or None when no operator token was issued (or the file is unreadable)."""
    try:
        doc = json.loads(operator_token_path(cfg).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    digest = doc.get("sha256") if isinstance(doc, dict) else None
    if not isinstance(digest, str) or len(digest) != 64:
        return None
    return digest


def operator_token_issued_at(cfg: Settings) -> str | None:
    try:
        return json.loads(operator_token_path(cfg).read_text(encoding="utf-8")).get("issued_at")
    except (OSError, ValueError, AttributeError):
        return None


def is_operator_secret(cfg: Settings, secret: str | None) -> bool:
    """``secret`` is the operator's current one (constant-time comparison of the hashes)."""
    stored = operator_token_hash(cfg)
    if stored is None or not secret or len(secret) > MAX_SECRET_CHARS:
        return False
    return hmac.compare_digest(_digest(secret), stored)


def bearer(authorization: str | None) -> str | None:
    """The secret of an ``Authorization: Bearer <secret>`` header."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None
