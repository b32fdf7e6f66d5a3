"""API keys encrypted at rest.

A :class:`Vault` turns an :class:`~tmbot.domain.ApiKey` into Fernet ciphertext for the store and
back. The Fernet secret comes from ``TMBOT_SECRET_KEY`` or, for the embedded default, from a
key file beside the database (created once with mode 0600). Nothing here ever puts a key or
the secret into an exception or a log line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from tmbot.domain import ApiKey
from tmbot.errors import ConfigError

log = logging.getLogger(__name__)

#: The environment variable holding the Fernet key (urlsafe base64 of 32 bytes).
SECRET_KEY_ENV = "TMBOT_SECRET_KEY"  # noqa: S105 (a variable name, not a secret)

#: How to make a Fernet key, for error messages.
GENERATE_KEY_COMMAND = (
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)

_UNDECRYPTABLE = (
    f"The stored key cannot be decrypted with this {SECRET_KEY_ENV}; bind the key again."
)


def fingerprint(key: ApiKey) -> str:
    """How a key is shown to people: ``…a1b2``."""
    return key.fingerprint


def key_file_for(database_path: Path) -> Path:
    """Where the generated Fernet key lives for a database: ``<db dir>/<db stem>.key``
    (``data/tmbot.db`` -> ``data/tmbot.key``)."""
    return database_path.parent / f"{database_path.stem}.key"


#: How many decrypted keys a vault remembers (by ciphertext).
REMEMBERED_KEYS = 4096


class Vault:
    """Encrypts and decrypts API keys with one Fernet key.

    It remembers what it decrypted, by ciphertext (a bounded map, oldest out first): every
    brief's leak check (:mod:`tmbot.leaks`) reads every key bound in its workspace, and
    decrypting them all again for each of a thousand briefs kept the event loop busy for
    seconds. A rebound key has a new ciphertext (Fernet's is never the same twice)."""

    def __init__(self, fernet_key: bytes) -> None:
        try:
            self._fernet = Fernet(fernet_key)
            self._plain: dict[bytes, ApiKey] = {}
        except (ValueError, TypeError):
            raise ConfigError(
                "The secret key is not a valid Fernet key (32 url-safe base64-encoded bytes); "
                f"make one with: {GENERATE_KEY_COMMAND}"
            ) from None

    def __repr__(self) -> str:
        return "Vault(…)"

    def encrypt(self, key: ApiKey) -> bytes:
        return self._fernet.encrypt(key.secret.encode("utf-8"))

    def decrypt(self, ciphertext: bytes) -> ApiKey:
        known = self._plain.get(ciphertext)
        if known is not None:
            return known
        try:
            plain = self._fernet.decrypt(ciphertext)
        except InvalidToken:
            raise ConfigError(_UNDECRYPTABLE) from None
        key = ApiKey(plain.decode("utf-8"))
        if len(self._plain) >= REMEMBERED_KEYS:
            del self._plain[next(iter(self._plain))]
        self._plain[bytes(ciphertext)] = key
        return key

    def can_decrypt(self, ciphertext: bytes) -> bool:
        """False when ``ciphertext`` was made with another secret (``TMBOT_SECRET_KEY``
        changed since the key was bound)."""
        try:
            self._fernet.decrypt(ciphertext)
        except InvalidToken:
            return False
        return True

    @classmethod
    def from_environment(
        cls, *, env: Mapping[str, str], key_file: Path | None, stored_keys: bool = False
    ) -> Vault:
        """The vault for this process.

        ``TMBOT_SECRET_KEY`` wins when set. Otherwise the Fernet key is read from
        ``key_file``, which is created (mode 0600, atomically) with a fresh key when missing
        — unless ``stored_keys`` says the database already holds keys: they were encrypted
        with a secret that is not here now, and a new one would make every one unusable.
        A key file that other users may read or write is refused. ``key_file=None`` says
        there is no place for one (a PostgreSQL database: no file to keep it beside, and
        every process sharing the database must use the same secret), so
        ``TMBOT_SECRET_KEY`` is required.
        """
        configured = env.get(SECRET_KEY_ENV, "").strip()
        if configured:
            try:
                return cls(configured.encode("ascii"))
            except (ConfigError, UnicodeEncodeError):
                raise ConfigError(
                    f"{SECRET_KEY_ENV} is not a valid Fernet key (32 url-safe base64-encoded "
                    f"bytes); make one with: {GENERATE_KEY_COMMAND}"
                ) from None
        if key_file is None:
            raise ConfigError(
                f"{SECRET_KEY_ENV} must be set when the database is PostgreSQL: every process "
                "sharing it must encrypt keys with the same secret, and there is no database "
                f"file to keep a key file beside (make one with: {GENERATE_KEY_COMMAND})."
            )
        if stored_keys and not key_file.exists():
            raise ConfigError(
                f"The database holds API keys encrypted with a {SECRET_KEY_ENV} that is not set "
                f"now (and there is no key file {key_file}); set {SECRET_KEY_ENV} to the secret "
                "they were stored with."
            )
        return cls(_read_or_create_key_file(key_file))


def _read_or_create_key_file(path: Path) -> bytes:
    try:
        try:
            return _read_key_file(path)
        except FileNotFoundError:
            pass
        created = _create_key_file(path)
        if created is not None:
            log.info("created a new secret key file at %s (mode 0600); back it up", path)
            return created
        return _read_key_file(path)  # another process created it first
    except OSError as exc:
        raise ConfigError(
            f"The key file {path} cannot be read or created ({exc.strerror or 'unknown error'}); "
            f"fix its folder's permissions or set {SECRET_KEY_ENV}."
        ) from None


def _read_key_file(path: Path) -> bytes:
    status = path.stat()
    if not stat.S_ISREG(status.st_mode):
        raise ConfigError(f"The key file {path} is not a regular file; move it away.")
    if os.name == "posix" and status.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"The key file {path} can be read or written by other users; "
            f"run `chmod 600 {path}` (or set {SECRET_KEY_ENV})."
        )
    key = path.read_bytes().strip()
    try:
        Fernet(key)
    except (ValueError, TypeError):
        raise ConfigError(
            f"The key file {path} does not hold a valid Fernet key; restore it from a backup, "
            f"or delete it and bind every key again."
        ) from None
    return key


def _create_key_file(path: Path) -> bytes | None:
    """Write a fresh key to ``path``: into a private temporary file first (O_CREAT|O_EXCL,
    0600), then hard-linked into place, so nobody ever reads a half-written key and an
    existing file is never replaced. None when ``path`` appeared meanwhile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    _write_exclusive(temporary, key + b"\n")
    try:
        os.link(temporary, path)
    except FileExistsError:
        return None
    except OSError:
        # A filesystem without hard links: create the file itself exclusively instead.
        try:
            _write_exclusive(path, key + b"\n")
        except FileExistsError:
            return None
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    return key


def _write_exclusive(path: Path, content: bytes) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    with os.fdopen(os.open(path, flags, 0o600), "wb") as file:
        file.write(content)
        file.flush()
        os.fsync(file.fileno())
