"""Whether a bound key can be used by this process, and what to tell people when it cannot.

A key is stored encrypted with the process's secret (``TMBOT_SECRET_KEY`` or the key file).
After that secret changes the key cannot be decrypted: it is shown as unusable (never with its
old balance), and whoever needs it is told who can bind it again — its owner for a personal
key, a workspace admin for the team's key.
"""

from __future__ import annotations

from tmbot.capabilities import caps
from tmbot.domain import ApiKey
from tmbot.errors import ConfigError, KeyUnusable
from tmbot.funds import provider_flag
from tmbot.records import KeyBinding, KeyScope
from tmbot.vault import SECRET_KEY_ENV, Vault


def usable(vault: Vault, binding: KeyBinding) -> bool:
    return vault.can_decrypt(binding.ciphertext)


def rebind_advice(binding: KeyBinding) -> str:
    """``bind it again with `/taste key``` or, for the team's key, ``ask a workspace admin
    …``."""
    flag = provider_flag(binding.ref.provider)
    if binding.ref.scope is KeyScope.TEAM:
        return f"ask a workspace admin to bind it again with `/taste team key{flag}`"
    return f"bind it again with `/taste key{flag}`"


def unusable_error(binding: KeyBinding) -> KeyUnusable:
    name = caps(binding.ref.provider).display_name
    whose = "Your key" if binding.ref.scope is KeyScope.USER else "The team's key"
    return KeyUnusable(
        f"{whose} for {name} ({binding.fingerprint}) cannot be decrypted since the bot's "
        f"{SECRET_KEY_ENV} changed, so {rebind_advice(binding)}."
    )


def open_key(vault: Vault, binding: KeyBinding) -> ApiKey:
    """The binding's key, or :class:`KeyUnusable` saying who can bind it again."""
    try:
        return vault.decrypt(binding.ciphertext)
    except ConfigError:
        raise unusable_error(binding) from None


def unusable_note(binding: KeyBinding) -> str:
    """How ``credits`` and ``team show`` show such a key instead of its balance."""
    return (
        f"unusable: it cannot be decrypted since {SECRET_KEY_ENV} changed, so "
        f"{rebind_advice(binding)}"
    )
