"""No bound key inside a message: refuse any text holding a key bound in the tenant.

The grammar already refuses tokens shaped like either provider's keys
(:func:`tmbot.commands.secret_shaped`); this catches the rest — a key of any shape that is
bound somewhere in the same workspace — before anything is stored or sent.
"""

from __future__ import annotations

from tmbot.cleantext import clean
from tmbot.commands import KEY_IN_TEXT
from tmbot.errors import ConfigError, ParseError
from tmbot.ports import Store
from tmbot.vault import Vault


async def refuse_bound_keys(store: Store, vault: Vault, tenant: str, text: str) -> None:
    """Raise :class:`ParseError` (telling the person to rotate the key) when ``text`` holds
    a key bound anywhere in ``tenant``. Keys this process cannot decrypt are skipped."""
    cleaned = clean(text)
    for binding in await store.list_keys(tenant):
        try:
            secret = vault.decrypt(binding.ciphertext).secret
        except ConfigError:
            continue
        if secret and (secret in text or secret in cleaned):
            raise ParseError(KEY_IN_TEXT)
