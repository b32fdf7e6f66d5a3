"""Keys at rest (Vault, the key file) and keys in logs (RedactingFilter)."""

from __future__ import annotations

import io
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from storage.sqlite import SqliteStore
from tmbot.domain import ApiKey, ProviderName
from tmbot.errors import ConfigError
from tmbot.records import KeyBinding, KeyRef, KeyScope
from tmbot.redact import RedactingFilter, install_redaction, redact
from tmbot.vault import REMEMBERED_KEYS, Vault, _create_key_file, fingerprint, key_file_for

RAW_KEY = "tm_test_SECRETabcdef1234"

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


@pytest.fixture
def fernet_key() -> bytes:
    return Fernet.generate_key()


# --- Vault -----------------------------------------------------------------------------


def test_round_trip_and_ciphertext_hides_the_key(fernet_key: bytes) -> None:
    vault = Vault(fernet_key)
    key = ApiKey(RAW_KEY)
    ciphertext = vault.encrypt(key)
    assert RAW_KEY.encode() not in ciphertext
    assert b"SECRET" not in ciphertext
    assert vault.decrypt(ciphertext) == key
    assert vault.encrypt(key) != ciphertext  # fresh IV every time
    assert "SECRET" not in repr(vault) and fernet_key.decode() not in repr(vault)


def test_unicode_keys_survive(fernet_key: bytes) -> None:
    vault = Vault(fernet_key)
    key = ApiKey("vtx-ключ-🔑-0000")
    assert vault.decrypt(vault.encrypt(key)) == key


def test_decrypting_with_another_secret_is_a_config_error(fernet_key: bytes) -> None:
    ciphertext = Vault(fernet_key).encrypt(ApiKey(RAW_KEY))
    with pytest.raises(ConfigError) as caught:
        Vault(Fernet.generate_key()).decrypt(ciphertext)
    assert caught.value.user_message == (
        "The stored key cannot be decrypted with this TMBOT_SECRET_KEY; bind the key again."
    )
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    with pytest.raises(ConfigError):
        Vault(fernet_key).decrypt(b"not a token")


def test_decrypted_keys_are_remembered_within_a_bound(fernet_key: bytes) -> None:
    vault = Vault(fernet_key)
    texts = [vault.encrypt(ApiKey(f"{RAW_KEY}-{i}")) for i in range(REMEMBERED_KEYS + 1)]
    first = vault.decrypt(texts[0])
    assert vault.decrypt(texts[0]) is first  # remembered, not decrypted again
    assert [vault.decrypt(t).secret for t in texts[1:4]] == [f"{RAW_KEY}-{i}" for i in (1, 2, 3)]
    for text in texts[4:]:
        vault.decrypt(text)
    again = vault.decrypt(texts[0])  # the oldest went out
    assert again == first and again is not first
    with pytest.raises(ConfigError):  # another secret's vault remembers nothing of this one
        Vault(Fernet.generate_key()).decrypt(texts[0])


def test_fingerprint_and_key_file_location() -> None:
    assert fingerprint(ApiKey(RAW_KEY)) == "…1234"
    assert key_file_for(Path("/data/bot/tmbot.db")) == Path("/data/bot/tmbot.key")
    assert key_file_for(Path("tmbot.db")) == Path("tmbot.key")


@posix_only
def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    key_file = tmp_path / "state" / "tmbot.key"
    first = Vault.from_environment(env={}, key_file=key_file)
    assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    Fernet(key_file.read_bytes().strip())  # a valid Fernet key
    assert [p.name for p in key_file.parent.iterdir()] == ["tmbot.key"]  # no temp left over

    ciphertext = first.encrypt(ApiKey(RAW_KEY))
    second = Vault.from_environment(env={"TMBOT_SECRET_KEY": "  "}, key_file=key_file)
    assert second.decrypt(ciphertext) == ApiKey(RAW_KEY)


def test_an_existing_key_file_is_never_replaced(tmp_path: Path) -> None:
    key_file = tmp_path / "tmbot.key"
    key_file.write_bytes(b"theirs\n")
    assert _create_key_file(key_file) is None  # someone else won the race
    assert key_file.read_bytes() == b"theirs\n"
    assert [p.name for p in tmp_path.iterdir()] == ["tmbot.key"]


def test_environment_secret_wins(tmp_path: Path, fernet_key: bytes) -> None:
    key_file = tmp_path / "tmbot.key"
    vault = Vault.from_environment(
        env={"TMBOT_SECRET_KEY": fernet_key.decode() + "\n"}, key_file=key_file
    )
    assert not key_file.exists()
    assert Vault(fernet_key).decrypt(vault.encrypt(ApiKey(RAW_KEY))) == ApiKey(RAW_KEY)


@pytest.mark.parametrize("bad", ["not-a-fernet-key-hunter2", "üñíçødé", "c2hvcnQ="])
def test_bad_environment_secret_says_how_to_make_one(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Vault.from_environment(env={"TMBOT_SECRET_KEY": bad}, key_file=tmp_path / "k.key")
    message = caught.value.user_message
    assert bad not in message and bad not in str(caught.value)
    assert "TMBOT_SECRET_KEY" in message
    assert "Fernet.generate_key()" in message
    assert not (tmp_path / "k.key").exists()


@posix_only
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o622])
def test_key_file_open_to_others_is_refused(tmp_path: Path, mode: int) -> None:
    key_file = tmp_path / "tmbot.key"
    key = Fernet.generate_key()
    key_file.write_bytes(key)
    key_file.chmod(mode)
    with pytest.raises(ConfigError, match="chmod 600") as caught:
        Vault.from_environment(env={}, key_file=key_file)
    assert key.decode() not in str(caught.value)


def test_key_file_with_garbage_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "tmbot.key"
    key_file.write_bytes(b"garbage-hunter2")
    key_file.chmod(0o600)
    with pytest.raises(ConfigError, match="valid Fernet key") as caught:
        Vault.from_environment(env={}, key_file=key_file)
    assert "hunter2" not in str(caught.value)


def test_unusable_key_file_locations_are_config_errors(tmp_path: Path) -> None:
    folder = tmp_path / "tmbot.key"
    folder.mkdir()  # a directory where the key file should be
    with pytest.raises(ConfigError, match="not a regular file"):
        Vault.from_environment(env={}, key_file=folder)
    not_a_folder = tmp_path / "plain"
    not_a_folder.write_text("x")
    with pytest.raises(ConfigError, match="cannot be read or created"):
        Vault.from_environment(env={}, key_file=not_a_folder / "tmbot.key")


async def test_raw_key_never_reaches_the_database_files(tmp_path: Path) -> None:
    db_path = tmp_path / "tmbot.db"
    vault = Vault.from_environment(env={}, key_file=key_file_for(db_path))
    key = ApiKey(RAW_KEY)
    ref = KeyRef(KeyScope.USER, "T1", "U1", ProviderName.TASTEMACHINE)
    store = await SqliteStore.open(db_path)

    def raw_bytes() -> bytes:
        data = db_path.read_bytes()
        wal = db_path.with_name(db_path.name + "-wal")
        return data + (wal.read_bytes() if wal.exists() else b"")

    try:
        await store.put_key(
            KeyBinding(
                ref=ref,
                ciphertext=vault.encrypt(key),
                fingerprint=fingerprint(key),
                created_at=1.0,
            )
        )
        await store.record_balance(ref, remaining=10.0, seen_at=2.0)
        stored = await store.get_key(ref)
        assert stored is not None and vault.decrypt(stored.ciphertext) == key
        assert stored.fingerprint == "…1234"
        while_open = raw_bytes()
    finally:
        await store.close()
    after_close = raw_bytes()
    for blob in (while_open, after_close):
        assert RAW_KEY.encode() not in blob
        assert b"SECRETabcdef" not in blob
        assert RAW_KEY.encode("utf-16-le") not in blob
    assert "…1234".encode() in after_close  # the fingerprint is what is kept in the clear


# --- RedactingFilter -------------------------------------------------------------------

TM_KEY = "tm_live_Q2hlZXNlQnVyZ2VyMjAyNQ"
VTRIX_KEY = "vx9F3kLq0Zt7PwM2sA8d"  # no fixed shape: only redacted once registered
SLACK_TOKEN = "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp"
DISCORD_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GhIjKl.AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"


@pytest.fixture
def redacting(caplog: pytest.LogCaptureFixture) -> Iterator[RedactingFilter]:
    caplog.set_level(logging.DEBUG)
    installed = install_redaction()
    assert installed in caplog.handler.filters
    try:
        yield installed
    finally:
        for handler in logging.getLogger().handlers:
            handler.removeFilter(installed)


@pytest.fixture
def captured(redacting: RedactingFilter) -> Iterator[io.StringIO]:
    """A plain handler with the usual formatter, filtered, on a test logger."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    handler.addFilter(redacting)
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


def test_key_shaped_text_is_redacted(
    captured: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("tests.redaction")
    logger.info("binding key %s for %s", TM_KEY, "U1")
    logger.info("headers %r", {"Authorization": f"Bearer {TM_KEY}", "Accept": "image/png"})
    logger.warning("POST /v1 Authorization: Bearer abcdefghijklmnop0000 failed")
    logger.info("slack %s discord %s", SLACK_TOKEN, DISCORD_TOKEN)
    logger.info("raw header Authorization: Basic dXNlcjpwYXNzd29yZA== end")

    for text in (captured.getvalue(), caplog.text):
        for secret in (TM_KEY, SLACK_TOKEN, DISCORD_TOKEN, "abcdefghijklmnop0000", "dXNlcjpw"):
            assert secret not in text
        assert f"binding key …{TM_KEY[-4:]} for U1" in text  # the fingerprint is shown
        assert "Bearer …0000 failed" in text
        assert "'Accept': 'image/png'" in text
        assert "…" + SLACK_TOKEN[-4:] in text and "…" + DISCORD_TOKEN[-4:] in text
        assert "Authorization: [redacted] end" in text
    assert all(record.args == () for record in caplog.records)


def test_registered_secrets_are_redacted(
    redacting: RedactingFilter, captured: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("tests.redaction")
    logger.info("before: %s", VTRIX_KEY)
    assert VTRIX_KEY in caplog.text  # no fixed shape: nothing to recognise yet

    caplog.clear()
    redacting.register(VTRIX_KEY)
    redacting.register(VTRIX_KEY + "-longer")
    redacting.register("short")  # too short to redact safely: ignored
    logger.info("vtrix %s and %s", VTRIX_KEY, VTRIX_KEY + "-longer")
    logger.info("a short word stays")
    text = caplog.text
    assert VTRIX_KEY not in text
    assert "vtrix …" + VTRIX_KEY[-4:] + " and …nger" in text
    assert "a short word stays" in text
    after = captured.getvalue().split("before:", 1)[1].split("\n", 1)[1]
    assert "vtrix …" in after and VTRIX_KEY not in after


def test_exception_text_is_redacted(
    redacting: RedactingFilter, captured: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    redacting.register(VTRIX_KEY)
    logger = logging.getLogger("tests.redaction")
    try:
        raise RuntimeError(f"provider said no to {TM_KEY} and {VTRIX_KEY}")
    except RuntimeError:
        logger.exception("submit failed")

    for text in (captured.getvalue(), caplog.text):
        assert "Traceback" in text and "RuntimeError: provider said no to" in text
        assert TM_KEY not in text and VTRIX_KEY not in text
        assert "…" + TM_KEY[-4:] in text and "…" + VTRIX_KEY[-4:] in text
    record = caplog.records[-1]
    assert record.exc_info is None
    assert record.exc_text is not None and TM_KEY not in record.exc_text


def test_broken_format_arguments_are_still_redacted(caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("tests.redaction.broken")
    logger.addHandler(handler)
    try:
        logger.warning("two %s %s", TM_KEY)  # one argument short
    finally:
        logger.removeHandler(handler)
    assert TM_KEY not in stream.getvalue()
    assert "…" + TM_KEY[-4:] in stream.getvalue()


def test_install_is_idempotent(redacting: RedactingFilter) -> None:
    assert install_redaction() is redacting
    handler = logging.getLogger().handlers[0]
    assert handler.filters.count(redacting) == 1


def test_redact_leaves_ordinary_text_alone() -> None:
    text = "tmbot.providers.tastemachine polled task abc123 in 2.5s (Bearer token missing)"
    assert redact(text) == text
    assert redact("TMBOT_SECRET_KEY=abcdefgh") == "TMBOT_SECRET_KEY=[redacted]"
    assert redact(f"api_key={TM_KEY}&x=1") == f"api_key=…{TM_KEY[-4:]}&x=1"


def test_a_secret_registered_with_a_ttl_is_dropped_once_it_has_passed() -> None:
    now = [1000.0]
    redacting = RedactingFilter(clock=lambda: now[0])
    code, key = "ABCD-EFGH-JKLM", VTRIX_KEY
    redacting.register(key)  # for good
    redacting.register(code, ttl=600.0)
    assert redacting.redact(f"{code} {key}") == f"…JKLM …{key[-4:]}"
    now[0] += 599.0
    assert redacting.redact(code) == "…JKLM" and redacting.registered == 2
    now[0] += 1.0
    assert redacting.redact(f"{code} {key}") == f"{code} …{key[-4:]}"  # the key stays
    assert redacting.registered == 1

    # a code made every few seconds for a day: only the live ones are ever kept
    for n in range(2000):
        now[0] += 45.0
        redacting.register(f"code-{n:08d}", ttl=600.0)
    assert redacting.registered == 1 + 600 // 45 + 1  # the key and the codes still usable
    assert redacting.redact("code-00000000 code-00001999") == "code-00000000 …1999"


def test_registering_again_keeps_the_longer_life() -> None:
    now = [0.0]
    redacting = RedactingFilter(clock=lambda: now[0])
    redacting.register(VTRIX_KEY, ttl=10.0)
    redacting.register(VTRIX_KEY)  # the same text as a lasting secret: never dropped
    redacting.register(VTRIX_KEY, ttl=1.0)
    now[0] = 1e9
    assert VTRIX_KEY not in redacting.redact(VTRIX_KEY)
