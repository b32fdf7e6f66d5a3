"""`tmbot doctor`: one line per check of a configuration, and what to do when it fails.

Each check is a small function returning a :class:`Finding`; :mod:`tmbot.cli` gathers the
inputs (it alone opens the database) and prints :func:`report`. No check prints a secret:
tokens are named, never shown; keys appear as fingerprints.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from tmbot.capabilities import caps
from tmbot.domain import ProviderName
from tmbot.errors import ConfigError
from tmbot.records import KeyBinding, KeyScope
from tmbot.vault import SECRET_KEY_ENV, Vault


@dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    detail: str
    fix: str = ""  # what to do, when not ok


def report(findings: Iterable[Finding]) -> tuple[str, bool]:
    """The lines to print, and whether everything passed."""
    lines, healthy = [], True
    for f in findings:
        healthy &= f.ok
        line = f"{'ok  ' if f.ok else 'FAIL'} {f.check}: {f.detail}"
        lines.append(line + (f" — {f.fix}" if f.fix and not f.ok else ""))
    return "\n".join(lines), healthy


# --- tokens ------------------------------------------------------------------------------

#: the platforms' variables: (platform, required, one of these for the mode)
PLATFORM_VARIABLES: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "Slack": ("SLACK_BOT_TOKEN", ("SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET")),
    "Discord": ("DISCORD_TOKEN", ()),
}


def tokens(env: Mapping[str, str]) -> list[Finding]:
    """Which platforms are configured (names of variables only, never their values)."""
    found: list[Finding] = []
    for platform, (required, modes) in PLATFORM_VARIABLES.items():
        if not env.get(required):
            stray = [m for m in modes if env.get(m)]
            if stray:
                found.append(
                    Finding(
                        f"{platform} token",
                        False,
                        f"{' and '.join(stray)} set but {required} is not",
                        f"set {required} too (the app's Bot User OAuth Token, xoxb-…)",
                    )
                )
                continue
            found.append(Finding(f"{platform} token", True, f"{required} not set: {platform} off"))
            continue
        if modes and not any(env.get(m) for m in modes):
            found.append(
                Finding(
                    f"{platform} token",
                    False,
                    f"{required} is set but neither {' nor '.join(modes)} is",
                    f"set {modes[0]} for Socket Mode or {modes[1]} for HTTP mode",
                )
            )
            continue
        mode = next((m for m in modes if env.get(m)), None)
        detail = f"{required} is set" + (f" (with {mode})" if mode else "")
        found.append(Finding(f"{platform} token", True, detail))
    if not any(env.get(required) for required, _ in PLATFORM_VARIABLES.values()):
        found.append(
            Finding(
                "chat platforms",
                False,
                "no chat platform is configured",
                "set SLACK_BOT_TOKEN or DISCORD_TOKEN (see .env.example), or try `make demo`",
            )
        )
    return found


# --- the database and the secret ----------------------------------------------------------


def database(path: Path, *, schema: int | None, latest: int) -> Finding:
    """Reachable, writable, migrations current (``schema``: the version stored, None when
    there is no database yet)."""
    where = str(path)
    if schema is None:
        folder = path.parent if str(path.parent) else Path(".")
        if not os.access(folder, os.W_OK):
            return Finding("database", False, f"{where} cannot be created", "fix the folder")
        return Finding("database", True, f"{where} does not exist yet; it is made at start")
    if not path.is_file():
        return Finding("database", False, f"{where} is not a file", "point it at a file")
    if not schema:
        return Finding(
            "database", False, f"{where} is not a tmbot database", "point it at another file"
        )
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        return Finding(
            "database",
            False,
            f"{where} is not writable",
            "give the bot's user write access to the file and its folder",
        )
    if schema < latest:
        detail = f"{where} is at schema {schema} of {latest}"
        return Finding("database", True, detail + "; it is migrated at the next start")
    if schema > latest:
        return Finding(
            "database",
            False,
            f"{where} was written by a newer tmbot (schema {schema})",
            "upgrade tmbot",
        )
    return Finding("database", True, f"{where} (schema {schema}, writable)")


def secret(
    env: Mapping[str, str], key_file: Path | None, *, stored_keys: int
) -> tuple[Finding, Vault | None]:
    """Where the secret comes from, and the vault it makes (None when there is none yet).
    Nothing is created: without a secret and a key file, the first start makes the file.
    ``key_file=None`` (PostgreSQL): ``TMBOT_SECRET_KEY`` is required."""
    configured = bool(env.get(SECRET_KEY_ENV, "").strip())
    if key_file is not None and not configured and not key_file.exists() and not stored_keys:
        return Finding("secret", True, f"none yet: {key_file} is made at the first start"), None
    try:
        vault = Vault.from_environment(env=env, key_file=key_file, stored_keys=bool(stored_keys))
    except ConfigError as err:
        return Finding("secret", False, err.user_message.rstrip("."), ""), None
    if env.get(SECRET_KEY_ENV, "").strip():
        return Finding("secret", True, f"{SECRET_KEY_ENV} is set"), vault
    return Finding("secret", True, f"key file {key_file} (mode 0600)"), vault


def keys(bindings: Sequence[KeyBinding], vault: Vault | None) -> Finding:
    if not bindings:
        return Finding("stored keys", True, "none bound yet")
    if vault is None:
        return Finding("stored keys", False, f"{len(bindings)} stored, no secret to read them")
    bad = [b for b in bindings if not vault.can_decrypt(b.ciphertext)]
    if not bad:
        return Finding("stored keys", True, f"{len(bindings)} stored, all readable")
    shown = ", ".join(
        f"{caps(b.ref.provider).display_name} {b.fingerprint} "
        f"({'team' if b.ref.scope is KeyScope.TEAM else 'personal'})"
        for b in bad[:5]
    )
    return Finding(
        "stored keys",
        False,
        f"{len(bad)} of {len(bindings)} cannot be decrypted with the current secret: {shown}",
        f"{SECRET_KEY_ENV} changed since they were bound: set it back to that secret, or have "
        "them bound again (`/taste key`, `/taste team key`)",
    )


# --- providers -----------------------------------------------------------------------------


#: seconds a provider's address gets to answer
PROVIDER_WAIT = 5.0


async def provider(name: ProviderName, url: str) -> Finding:
    """Any HTTP answer means the address is reachable (keys are not tried here)."""
    label = f"{caps(name).display_name}"
    try:
        async with httpx.AsyncClient(timeout=PROVIDER_WAIT) as client:
            answer = await client.get(url)
    except httpx.HTTPError as err:
        return Finding(
            label,
            False,
            f"cannot reach {url} ({type(err).__name__})",
            "check the URL and the network (TASTEMACHINE_API_URL / VTRIX_API_URL)",
        )
    return Finding(label, True, f"{url} answers (HTTP {answer.status_code})")
