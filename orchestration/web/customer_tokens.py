"""The customers' portal tokens: issued by `meterline portal token issue`, kept as hashes.

``$METERLINE_HOME/access/portal_tokens.json`` (mode 0600 in the 0700 ``access/`` folder, written
atomically with an fsync, like the operator's file in auth.py) holds one entry per token: its
public id (``pt_`` + 8 hex, what `list` shows and `revoke` takes), the customer, the SHA-256 of
the secret, when it was issued, when it expires (None: never) and when it was revoked. The
secret itself (``mlp_`` + 43 url-safe characters) is printed once and never stored. Every
read-modify-write holds an ``fcntl`` lock on a lock file beside it, so two commands cannot lose
each other's tokens. The server reads the file on every request: a revocation or an expiry
(against ``orchestration.lib.clock.now()``, so a pinned clock pins it too) takes effect at the
next request. The API (``/v1/``) authenticates customers with the same ``customer_for_secret``."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from orchestration.lib import clock
from orchestration.lib.settings import Settings, UsageError
from orchestration.web import private_files
from orchestration.web.auth import access_dir

#: a portal secret's prefix (a secret scanner, or a person, can tell what it is)
PREFIX = "mlp_"
ID_PREFIX = "pt_"
#: the longest secret worth hashing (a real one is 47 characters)
MAX_SECRET_CHARS = 512
#: the longest life a token may be given
MAX_EXPIRES_DAYS = 3660


@dataclass(frozen=True)
class Issued:
    token_id: str
    secret: str
    customer_id: str
    issued_at: str
    expires_at: str | None


def tokens_path(cfg: Settings) -> Path:
    return access_dir(cfg) / "portal_tokens.json"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _folder(cfg: Settings) -> Path:
    folder = access_dir(cfg)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    return folder


@contextlib.contextmanager
def _locked(cfg: Settings) -> Iterator[None]:
    """The read-modify-write lock (an flock on ``.portal_tokens.lock``, never the data file,
    which is replaced by a rename)."""
    with private_files.locked(_folder(cfg) / ".portal_tokens.lock"):
        yield


def _read(cfg: Settings) -> list[dict]:
    try:
        doc = json.loads(tokens_path(cfg).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    tokens = doc.get("tokens") if isinstance(doc, dict) else None
    return [t for t in tokens if isinstance(t, dict)] if isinstance(tokens, list) else []


def _write(cfg: Settings, tokens: list[dict]) -> None:
    _folder(cfg)  # made (0700) if missing
    path = tokens_path(cfg)
    body = json.dumps({"tokens": tokens}, indent=2) + "\n"
    private_files.write(path, body)


def _customers(cfg: Settings) -> set[str]:
    from orchestration.catalog.read import load_catalog

    return {row["customer_id"] for row in load_catalog(cfg.catalog_dir).customers
            if row["customer_id"]}


def issue(cfg: Settings, customer_id: str, *, expires_days: int | None) -> Issued:
    """A new token for a customer of the price book; its secret is returned once."""
    cfg.require_home()
    if expires_days is not None and not 0 < expires_days <= MAX_EXPIRES_DAYS:
        raise UsageError(f"--expires {expires_days}: give a number of days from 1 to "
                         f"{MAX_EXPIRES_DAYS} (or leave it out: no expiry)")
    if not cfg.catalog_dir.is_dir():
        raise UsageError(f"catalog directory {cfg.catalog_dir} does not exist: the customer "
                         f"is looked up in the price book (METERLINE_CATALOG_DIR)")
    if customer_id not in _customers(cfg):
        raise UsageError(f"no customer {customer_id!r} in the price book "
                         f"({cfg.catalog_dir / 'customers.csv'})")
    now = clock.now()
    issued_at = now.isoformat(timespec="seconds")
    expires_at = (None if expires_days is None
                  else (now + timedelta(days=expires_days)).isoformat(timespec="seconds"))
    secret = PREFIX + secrets.token_urlsafe(32)
    with _locked(cfg):
        tokens = _read(cfg)
        taken = {t.get("token_id") for t in tokens}
        token_id = ID_PREFIX + secrets.token_hex(4)
        while token_id in taken:
            token_id = ID_PREFIX + secrets.token_hex(4)
        tokens.append({"token_id": token_id, "customer_id": customer_id,
                       "sha256": _digest(secret), "issued_at": issued_at,
                       "expires_at": expires_at, "revoked_at": None})
        _write(cfg, tokens)
    return Issued(token_id=token_id, secret=secret, customer_id=customer_id,
                  issued_at=issued_at, expires_at=expires_at)


def _expired(token: dict, now: datetime) -> bool:
    expires = token.get("expires_at")
    if expires is None:
        return False
    try:
        return now >= datetime.fromisoformat(expires)
    except (TypeError, ValueError):
        return True  # an unreadable expiry opens nothing


def status(token: dict, now: datetime | None = None) -> str:
    """``active``, ``expired`` or ``revoked``."""
    if token.get("revoked_at"):
        return "revoked"
    return "expired" if _expired(token, now or clock.now()) else "active"


def list_tokens(cfg: Settings) -> list[dict]:
    """Every token, oldest first, without its hash: id, customer, issued, expires, revoked,
    status."""
    now = clock.now()
    return [{"token_id": t.get("token_id"), "customer_id": t.get("customer_id"),
             "issued_at": t.get("issued_at"), "expires_at": t.get("expires_at"),
             "revoked_at": t.get("revoked_at"), "status": status(t, now)}
            for t in _read(cfg)]


def revoke(cfg: Settings, token_id: str) -> bool:
    """Revoke a token by its public id; False when there is no such token (or it already was
    revoked: the first revocation's time is kept)."""
    with _locked(cfg):
        tokens = _read(cfg)
        for token in tokens:
            if token.get("token_id") == token_id and not token.get("revoked_at"):
                token["revoked_at"] = clock.now().isoformat(timespec="seconds")
                _write(cfg, tokens)
                return True
    return False


def customer_for_secret(cfg: Settings, secret: str | None) -> str | None:
    """The customer of a valid, unexpired, unrevoked token with this secret, else None. The
    presented secret's hash is compared with every stored hash in constant time (no early
    exit on a match), so the answer takes as long for any wrong secret."""
    if not secret or len(secret) > MAX_SECRET_CHARS or not secret.startswith(PREFIX):
        return None
    digest = _digest(secret)
    now = clock.now()
    found = None
    for token in _read(cfg):
        stored = token.get("sha256")
        if not isinstance(stored, str) or len(stored) != 64:
            continue
        if hmac.compare_digest(digest.encode(), stored.encode()) and found is None \
                and status(token, now) == "active" and isinstance(token.get("customer_id"), str):
            found = token["customer_id"]
    return found
