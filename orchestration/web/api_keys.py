"""The HTTP API's keys: issued by `meterline api-key issue`, kept in the home as hashes.

Two scopes, each a key of its own: ``ingest`` (prefix ``mli_``) may only ``POST /v1/events``;
``operator`` (prefix ``mlk_``) may only read (``GET /v1/customers/...`` of any customer). The
secret is printed once; ``$METERLINE_HOME/access/api_keys.json`` (mode 0600 in the 0700 folder,
like the operator token of auth.py) keeps only its SHA-256, with an id, a name, the scope and
the times it was issued and revoked. Every change is a read-modify-write under an exclusive
``fcntl`` lock, written to a temporary file, fsynced and renamed over the old one, so two
commands never lose each other's key and a reader never sees half a file. The server reads the
file on every request: a revocation holds from the next request, without a restart."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from orchestration.lib import clock
from orchestration.lib.settings import Settings, UsageError
from orchestration.web import auth, private_files

#: scope -> the secret's prefix (a secret scanner, or a person, can tell what it is)
PREFIXES = {"ingest": "mli_", "operator": "mlk_"}
SCOPES = tuple(PREFIXES)
MAX_NAME_CHARS = 100


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    scope: str
    sha256: str
    issued_at: str
    revoked_at: str | None = None

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def public(self) -> dict:
        """What `api-key list` shows: everything but the hash."""
        return {k: v for k, v in asdict(self).items() if k != "sha256"}


@dataclass(frozen=True)
class Issued:
    secret: str
    key: ApiKey
    path: Path


def keys_path(cfg: Settings) -> Path:
    return auth.access_dir(cfg) / "api_keys.json"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _parse(text: str) -> list[ApiKey]:
    doc = json.loads(text)
    keys = []
    for entry in doc.get("keys", []) if isinstance(doc, dict) else []:
        try:
            key = ApiKey(**{f: entry.get(f) for f in ApiKey.__dataclass_fields__})
        except (TypeError, AttributeError):
            continue
        if (key.scope in PREFIXES and isinstance(key.sha256, str) and len(key.sha256) == 64
                and isinstance(key.key_id, str)):
            keys.append(key)
    return keys


def load_keys(cfg: Settings) -> list[ApiKey]:
    """Every key of the home (revoked ones too); none when the file is absent or unreadable."""
    try:
        return _parse(keys_path(cfg).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []


@contextlib.contextmanager
def _locked(cfg: Settings) -> Iterator[None]:
    folder = auth.access_dir(cfg)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    with private_files.locked(folder / ".api_keys.lock"):
        yield


def _write(cfg: Settings, keys: list[ApiKey]) -> None:
    path = keys_path(cfg)
    body = json.dumps({"keys": [asdict(k) for k in keys]}, indent=2) + "\n"
    private_files.write(path, body)


def issue(cfg: Settings, scope: str, name: str | None = None) -> Issued:
    """A new key of ``scope``: the secret (shown once) and its record (only the hash kept)."""
    if scope not in PREFIXES:
        raise UsageError(f"no such scope: {scope} (one of {', '.join(SCOPES)})")
    name = (name or "").strip()
    if len(name) > MAX_NAME_CHARS or any(ord(c) < 32 for c in name):
        raise UsageError(f"--name must be at most {MAX_NAME_CHARS} printable characters")
    secret = PREFIXES[scope] + secrets.token_urlsafe(32)
    with _locked(cfg):
        keys = load_keys(cfg)
        taken = {k.key_id for k in keys}
        key_id = "key_" + secrets.token_hex(6)
        while key_id in taken:
            key_id = "key_" + secrets.token_hex(6)
        key = ApiKey(key_id=key_id, name=name, scope=scope, sha256=_digest(secret),
                     issued_at=clock.now().isoformat(timespec="seconds"))
        _write(cfg, [*keys, key])
    return Issued(secret=secret, key=key, path=keys_path(cfg))


def revoke(cfg: Settings, key_id: str) -> ApiKey:
    """Revoke a key by its id (kept in the file, marked revoked); revoking twice is a no-op."""
    with _locked(cfg):
        keys = load_keys(cfg)
        found = next((k for k in keys if k.key_id == key_id), None)
        if found is None:
            raise UsageError(f"no API key {key_id!r} in {keys_path(cfg)} "
                             f"(`meterline api-key list` shows them)")
        if not found.is_active:
            return found
        revoked = ApiKey(**{**asdict(found),
                            "revoked_at": clock.now().isoformat(timespec="seconds")})
        _write(cfg, [revoked if k.key_id == key_id else k for k in keys])
    return revoked


def key_for_secret(cfg: Settings, secret: str | None) -> ApiKey | None:
    """The active key whose secret this is, else None (hashes compared in constant time)."""
    if not secret or len(secret) > auth.MAX_SECRET_CHARS:
        return None
    digest = _digest(secret)
    found = None
    for key in load_keys(cfg):
        if hmac.compare_digest(digest, key.sha256) and key.is_active:
            found = key
    return found
