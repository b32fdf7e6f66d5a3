"""No bound key inside a message: refuse any text holding a key bound in the tenant.

The grammar already refuses tokens shaped like either provider's keys
(:func:`tmbot.commands.secret_shaped`); this catches the rest — a key of any shape that is
bound somewhere in the same workspace — before anything is stored or sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from tmbot.cleantext import clean
from tmbot.commands import KEY_IN_TEXT
from tmbot.errors import ConfigError, ParseError
from tmbot.ports import Store
from tmbot.vault import Vault

#: No bound key is shorter: a key is bound only after :func:`tmbot.commands.check_key`, whose
#: patterns (:mod:`tmbot.capabilities`) ask for at least 12 printable ASCII characters
#: (``tm_live_`` and 4 more) and never whitespace.
SHORTEST_KEY: Final = 12
_LONG_RUN = re.compile(rf"[\x21-\x7e]{{{SHORTEST_KEY},}}")


def could_hold_key(text: str, cleaned: str | None = None) -> bool:
    """False when no bound key can be inside ``text``, raw or cleaned (``cleaned``: its
    :func:`~tmbot.cleantext.clean`, when the caller has it): it has no run of
    :data:`SHORTEST_KEY` key characters. Most briefs are short words, and reading and
    decrypting every key of a workspace for each of them was the slowest part of accepting
    one (1,000 briefs on 200 team keys: 4.6 s before the first was sent)."""
    if _LONG_RUN.search(text):
        return True
    return bool(_LONG_RUN.search(clean(text) if cleaned is None else cleaned))


async def refuse_bound_keys(store: Store, vault: Vault, tenants: Iterable[str], text: str) -> None:
    """Raise :class:`ParseError` (telling the person to rotate the key) when ``text`` holds
    a key bound anywhere in one of ``tenants``. Keys this process cannot decrypt are
    skipped."""
    cleaned = clean(text)
    if not could_hold_key(text, cleaned):
        return
    for tenant in tenants:
        for binding in await store.list_keys(tenant):
            try:
                secret = vault.decrypt(binding.ciphertext).secret
            except ConfigError:
                continue
            if secret and (secret in text or secret in cleaned):
                raise ParseError(KEY_IN_TEXT)
