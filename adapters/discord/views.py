"""Persistent buttons under an image (``DynamicItem``s whose ``custom_id`` carries the
generation id, so a press after a restart still finds its way) and the modals (refine, key).

The items only route: the client (:class:`adapters.discord.bot.TasteBot`) does the work."""

from __future__ import annotations

import re
from typing import Any, Protocol, cast

import discord

from adapters.discord.render import TEXT_INPUT_MAX
from tmbot import KeyScope, ProviderName

GEN = r"(?P<gen>[0-9a-z]{1,32})"


class Actions(Protocol):
    async def press_again(self, interaction: discord.Interaction, generation_id: str) -> None: ...

    async def press_refine(self, interaction: discord.Interaction, generation_id: str) -> None: ...

    async def press_delete(self, interaction: discord.Interaction, generation_id: str) -> None: ...

    async def submit_refine(
        self, interaction: discord.Interaction, generation_id: str, words: str
    ) -> None: ...

    async def submit_key(
        self, interaction: discord.Interaction, provider: ProviderName, scope: KeyScope, key: str
    ) -> None: ...


def actions(interaction: discord.Interaction) -> Actions:
    return cast(Actions, interaction.client)


class AgainButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=rf"tmbot:again:{GEN}"):
    def __init__(self, generation_id: str) -> None:
        super().__init__(
            discord.ui.Button(
                label="Again",
                emoji="🔁",
                style=discord.ButtonStyle.primary,
                custom_id=f"tmbot:again:{generation_id}",
            )
        )
        self.generation_id = generation_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> AgainButton:
        return cls(match["gen"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await actions(interaction).press_again(interaction, self.generation_id)


class RefineButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=rf"tmbot:refine:{GEN}"):
    def __init__(self, generation_id: str) -> None:
        super().__init__(
            discord.ui.Button(
                label="Refine…",
                emoji="✏️",
                style=discord.ButtonStyle.secondary,
                custom_id=f"tmbot:refine:{generation_id}",
            )
        )
        self.generation_id = generation_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> RefineButton:
        return cls(match["gen"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await actions(interaction).press_refine(interaction, self.generation_id)


class DeleteButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=rf"tmbot:delete:{GEN}"):
    def __init__(self, generation_id: str) -> None:
        super().__init__(
            discord.ui.Button(
                label="Delete",
                emoji="🗑️",
                style=discord.ButtonStyle.danger,
                custom_id=f"tmbot:delete:{generation_id}",
            )
        )
        self.generation_id = generation_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> DeleteButton:
        return cls(match["gen"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await actions(interaction).press_delete(interaction, self.generation_id)


DYNAMIC_ITEMS = (AgainButton, RefineButton, DeleteButton)


def result_buttons(generation_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(AgainButton(generation_id))
    view.add_item(RefineButton(generation_id))
    view.add_item(DeleteButton(generation_id))
    return view


class RefineModal(discord.ui.Modal, title="Refine this image"):
    words: discord.ui.TextInput[RefineModal] = discord.ui.TextInput(
        label="What to change (words and --flags)",
        style=discord.TextStyle.paragraph,
        custom_id="words",
        max_length=TEXT_INPUT_MAX,
    )

    def __init__(self, generation_id: str) -> None:
        super().__init__(custom_id=f"tmbot:refine-modal:{generation_id}", timeout=900)
        self.generation_id = generation_id

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await actions(interaction).submit_refine(interaction, self.generation_id, self.words.value)


class KeyModal(discord.ui.Modal, title="Your API key"):
    """The key goes in here, never in a channel; it is never echoed."""

    key: discord.ui.TextInput[KeyModal] = discord.ui.TextInput(
        label="API key", custom_id="key", min_length=4, max_length=300
    )

    def __init__(self, provider: ProviderName, scope: KeyScope) -> None:
        super().__init__(custom_id=f"tmbot:key-modal:{scope}:{provider}", timeout=900)
        self.provider = provider
        self.scope = scope
        if scope is KeyScope.TEAM:
            self.title = "The team's API key"

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await actions(interaction).submit_key(
            interaction, self.provider, self.scope, self.key.value
        )
