"""The discord.py client: intents, the app commands (``/taste`` and its companions),
mentions, request channels, refinements in threads, reactions, buttons and modals.

Every platform event becomes one neutral call on the :class:`tmbot.Engine`; errors become
text in one place (:func:`error_text`). Results reach Discord through the notifier.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import discord
from discord import app_commands

from adapters.discord import PLATFORM, render
from adapters.discord.notifier import DiscordNotifier
from adapters.discord.options import MODELS, RESOLUTIONS, TASTES, ratios_for, with_options
from adapters.discord.views import DYNAMIC_ITEMS, KeyModal, RefineModal
from tmbot import (
    Actor,
    ApiKey,
    Engine,
    Generation,
    GenerationAccepted,
    KeyFormRequested,
    KeyScope,
    Place,
    ProviderName,
    Reply,
    TmbotError,
    tenant_of,
)
from tmbot import (
    render as render_reply,
)

log = logging.getLogger(__name__)

REGENERATE_EMOJI = frozenset({"🔁", "🔄"})
DELETE_EMOJI = frozenset({"❌", "🗑️", "🗑"})
#: the first words of /taste text that answer privately (account commands)
ACCOUNT_WORDS = frozenset(
    {"key", "logout", "credits", "settings", "history", "help", "team", "link", "unlink"}
)
#: account commands whose answers are private: in a channel message they get a pointer to
#: their slash command instead (``help`` and ``team channel on|off`` are fine in public)
PRIVATE_WORDS = {
    "key": "/taste-key",
    "logout": "/taste-logout",
    "credits": "/taste-credits",
    "settings": "/taste-settings",
    "history": "/taste-history",
    "link": "/taste-link",
    "unlink": "/taste-unlink",
}
#: team commands whose answers are private (``team link`` gives a one-time code)
PRIVATE_TEAM_WORDS = {
    "show": "/taste-team show",
    "link": "/taste-team link",
    "unlink": "/taste-team unlink",
}


def intents(*, message_content: bool = False) -> discord.Intents:
    """Only what the bot uses: guilds (channels, threads, roles for the admin check),
    messages (mentions; content only with the privileged intent) and reactions."""
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_messages = True
    wanted.dm_messages = True
    wanted.guild_reactions = True
    wanted.dm_reactions = True
    wanted.message_content = message_content
    return wanted


def error_text(err: TmbotError) -> str:
    """The one place where the adapter turns an error into text."""
    return render.text(f"⚠️ {err.user_message}")


def actor_of(
    user: discord.abc.User, guild_id: int | None, permissions: discord.Permissions | None
) -> Actor:
    """Tenant = the guild (``dm:<user id>`` in DMs); admin = Manage Server or Administrator
    (in a DM the person is the only member of their own tenant)."""
    if guild_id is None:
        return Actor(
            platform=PLATFORM,
            tenant=tenant_of(PLATFORM, f"dm:{user.id}"),
            user_id=str(user.id),
            is_admin=True,
            display_name=user.display_name,
        )
    admin = permissions is not None and (permissions.manage_guild or permissions.administrator)
    return Actor(
        platform=PLATFORM,
        tenant=tenant_of(PLATFORM, str(guild_id)),
        user_id=str(user.id),
        is_admin=admin,
        display_name=user.display_name,
    )


def interaction_actor(interaction: discord.Interaction) -> Actor:
    return actor_of(interaction.user, interaction.guild_id, interaction.permissions)


class TasteBot(discord.Client):
    def __init__(
        self,
        *,
        guild_id: int | None = None,
        message_content: bool = False,
        sync_commands: bool = True,
        identify_turn: Callable[[], Awaitable[None]] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(intents=intents(message_content=message_content), **options)
        self.tree = app_commands.CommandTree(self)
        self.guild_id = guild_id
        #: False for a shard's client: the process's main client syncs the commands once
        self.sync_commands = sync_commands
        #: awaited before each IDENTIFY: the process's clients take turns (Discord allows
        #: ``max_concurrency`` IDENTIFYs per 5 s for the whole bot)
        self.identify_turn = identify_turn
        self.message_content = message_content
        self.notifier = DiscordNotifier(self)
        self._engine: Engine | None = None
        add_commands(self)

    # --- wiring ------------------------------------------------------------------------

    def use(self, engine: Engine) -> None:
        self._engine = engine

        async def fingerprint(gen: Generation) -> str | None:
            binding = await engine.store.get_key(gen.key)
            return binding.fingerprint if binding is not None else None

        self.notifier.fingerprint = fingerprint
        self.notifier.real_seconds = engine.clock.real_seconds

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("TasteBot.use(engine) was not called")
        return self._engine

    async def close(self) -> None:
        await self.notifier.close()
        await super().close()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        await super().before_identify_hook(shard_id, initial=initial)
        if self.identify_turn is not None:
            await self.identify_turn()

    async def setup_hook(self) -> None:
        self.add_dynamic_items(*DYNAMIC_ITEMS)
        if not self.sync_commands:
            return
        if self.guild_id is not None:
            guild = discord.Object(self.guild_id)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)
        else:
            await self.tree.sync()

    # --- answering interactions ---------------------------------------------------------

    async def answer(
        self,
        interaction: discord.Interaction,
        run: Callable[[Actor], Awaitable[Reply]],
        *,
        ephemeral: bool = True,
        seen_first: bool = False,
    ) -> None:
        """Defer at once, run the use case, answer with its sentences (or the error).
        ``seen_first``: check the durable dedupe before deferring (a modal submit may reach
        two handlers, see :meth:`on_interaction`; only the first may answer)."""
        if seen_first and not await self.first_interaction(interaction):
            return
        if not interaction.response.is_done():
            await interaction.response.defer(ephemeral=ephemeral, thinking=True)
        if not seen_first and not await self.first_interaction(interaction):
            return
        try:
            reply = await run(interaction_actor(interaction))
        except TmbotError as err:
            await interaction.followup.send(
                error_text(err), ephemeral=True, allowed_mentions=render.NO_PINGS
            )
            return
        await interaction.followup.send(
            reply_text(reply), ephemeral=ephemeral, allowed_mentions=render.NO_PINGS
        )

    async def first_interaction(self, interaction: discord.Interaction) -> bool:
        return await self.engine.first_time("discord-interaction", str(interaction.id))

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """A form opened before a restart is submitted after it: discord.py has forgotten
        the form, so its submit is routed here by its ``custom_id``. When discord.py still
        knows it, both paths run and the durable dedupe lets the first one answer."""
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        data: Any = interaction.data or {}
        custom_id = str(data.get("custom_id", ""))
        values = {
            str(item.get("custom_id")): str(item.get("value") or "")
            for row in data.get("components", [])
            for item in row.get("components", [])
        }
        if m := re.fullmatch(r"tmbot:refine-modal:([0-9a-z]{1,32})", custom_id):
            await self.submit_refine(interaction, m[1], values.get("words", ""))
        elif m := re.fullmatch(r"tmbot:key-modal:(user|team):([a-z]+)", custom_id):
            try:
                provider = ProviderName(m[2])
            except ValueError:
                return
            await self.submit_key(interaction, provider, KeyScope(m[1]), values.get("key", ""))

    async def command(self, interaction: discord.Interaction, text: str) -> None:
        """An account or team command (private answer); ``key`` opens the modal."""
        actor = interaction_actor(interaction)
        place = Place(platform=PLATFORM, channel=str(interaction.channel_id))
        head = text.split()[:2]
        if head[:1] == ["key"] or head == ["team", "key"]:
            try:
                reply = await self.engine.execute(actor, text, place)
            except TmbotError as err:
                await interaction.response.send_message(
                    error_text(err), ephemeral=True, allowed_mentions=render.NO_PINGS
                )
                return
            if isinstance(reply, KeyFormRequested):
                await interaction.response.send_modal(KeyModal(reply.provider, reply.scope))
                return
            await interaction.response.send_message(
                reply_text(reply), ephemeral=True, allowed_mentions=render.NO_PINGS
            )
            return
        await self.answer(interaction, lambda a: self.engine.execute(a, text, place))

    async def taste(self, interaction: discord.Interaction, text: str) -> None:
        """``/taste``: an image (public card, thread, file) or any command of the grammar."""
        words = text.split()
        if words and words[0].lower() in ACCOUNT_WORDS:
            await self.command(interaction, text)
            return
        await interaction.response.defer(thinking=True)
        if not await self.engine.first_time("discord-interaction", str(interaction.id)):
            return
        actor = interaction_actor(interaction)
        placeholder = await interaction.followup.send(
            embed=discord.Embed(
                title="🎨 Working on it…", description=render.cut(text, render.CARD_BRIEF_MAX)
            ),
            wait=True,
            allowed_mentions=render.NO_PINGS,
        )
        place = Place(
            platform=PLATFORM,
            channel=str(interaction.channel_id),
            card_message=str(placeholder.id),
        )
        try:
            reply = await self.engine.execute(actor, text, place)
        except TmbotError as err:
            await placeholder.delete()
            await interaction.followup.send(
                error_text(err), ephemeral=True, allowed_mentions=render.NO_PINGS
            )
            return
        if not isinstance(reply, GenerationAccepted):
            await placeholder.edit(
                content=reply_text(reply), embed=None, allowed_mentions=render.NO_PINGS
            )

    # --- buttons and modals (views.Actions) ------------------------------------------------

    async def press_again(self, interaction: discord.Interaction, generation_id: str) -> None:
        await self.answer(interaction, lambda a: self.engine.regenerate(a, generation_id))

    async def press_refine(self, interaction: discord.Interaction, generation_id: str) -> None:
        await interaction.response.send_modal(RefineModal(generation_id))

    async def press_delete(self, interaction: discord.Interaction, generation_id: str) -> None:
        await self.answer(interaction, lambda a: self.engine.delete(a, generation_id))

    async def submit_refine(
        self, interaction: discord.Interaction, generation_id: str, words: str
    ) -> None:
        await self.answer(
            interaction, lambda a: self.engine.refine(a, generation_id, words), seen_first=True
        )

    async def submit_key(
        self, interaction: discord.Interaction, provider: ProviderName, scope: KeyScope, key: str
    ) -> None:
        secret = ApiKey(key.strip())
        await self.answer(
            interaction,
            lambda a: self.engine.bind_key(a, provider, secret, scope=scope),
            seen_first=True,
        )

    # --- messages: mentions, request channels, refinements -------------------------------

    async def on_message(self, message: discord.Message) -> None:
        me = self.user
        if me is None or message.author.bot or message.webhook_id is not None:
            return
        mentioned = me.id in message.raw_mentions  # never @everyone / @here / roles
        channel = message.channel
        if isinstance(channel, discord.DMChannel):
            await self._brief(message, message.content, thread=False)
            return
        if message.guild is None:
            return
        text = re.sub(rf"<@!?{me.id}>", " ", message.content).strip()
        if isinstance(channel, discord.Thread):
            if not (mentioned or self.message_content):
                return
            gen = await self.engine.generation_for_message(
                PLATFORM, str(channel.id), str(channel.id)
            )
            if gen is not None:
                await self._refine(message, gen, text)
            elif mentioned:
                await self._brief(message, text, thread=False)
            return
        if mentioned:
            await self._brief(message, text, thread=True)
            return
        actor = self._message_actor(message)
        if self.message_content and await self.engine.is_request_channel(
            actor.tenant, str(channel.id)
        ):
            await self._brief(message, text, thread=True)

    def _message_actor(self, message: discord.Message) -> Actor:
        author = message.author
        perms = author.guild_permissions if isinstance(author, discord.Member) else None
        return actor_of(author, message.guild.id if message.guild else None, perms)

    async def _brief(self, message: discord.Message, text: str, *, thread: bool) -> None:
        """A message that is a brief (or any command): the result in a thread started from
        that message (in place in DMs, in threads, or where threads are not allowed)."""
        if not await self.engine.first_time("discord-message", str(message.id)):
            return
        text = " ".join([text, *(a.url for a in message.attachments)]).strip()
        actor = self._message_actor(message)
        channel = message.channel
        words = text.split()
        private = PRIVATE_WORDS.get(words[0].lower()) if words else None
        if private is not None and not isinstance(channel, discord.DMChannel):
            await self._say(message, f"That answer is private: use `{private}`.", None)
            return
        lowered = [w.lower() for w in words[:2]]
        if lowered == ["team"] or (lowered[:1] == ["team"] and lowered[1] in PRIVATE_TEAM_WORDS):
            command = PRIVATE_TEAM_WORDS[lowered[1] if len(lowered) > 1 else "show"]
            await self._say(message, f"That answer is private: use `{command}`.", None)
            return
        thread_id: str | None = None
        if isinstance(channel, discord.Thread):
            place = Place(platform=PLATFORM, channel=str(channel.id), thread=str(channel.id))
        else:
            place = Place(platform=PLATFORM, channel=str(channel.id))
        try:
            if thread and _is_image(text):
                made = await self._thread_from(message, text)
                thread_id = str(made.id) if made is not None else None
                if thread_id is not None:
                    place = Place(platform=PLATFORM, channel=str(channel.id), thread=thread_id)
            reply = await self.engine.execute(actor, text, place)
        except TmbotError as err:
            await self._say(message, error_text(err), thread_id)
            return
        if isinstance(reply, KeyFormRequested):
            await self._say(message, "Use `/taste-key` to paste a key in a private form.", None)
        elif not isinstance(reply, GenerationAccepted):
            await self._say(message, reply_text(reply), thread_id)

    async def _thread_from(self, message: discord.Message, text: str) -> discord.Thread | None:
        name = render.cut(text.replace("\n", " ") or "tmbot", 100)
        try:
            return await message.create_thread(name=name, reason="tmbot brief")
        except discord.Forbidden:
            return None

    async def _refine(self, message: discord.Message, gen: Generation, text: str) -> None:
        if not await self.engine.first_time("discord-message", str(message.id)):
            return
        actor = self._message_actor(message)
        text = " ".join([text, *(a.url for a in message.attachments)]).strip()
        try:
            await self.engine.refine(actor, gen.id, text)
        except TmbotError as err:
            await self._say(message, error_text(err), None)

    async def _say(self, message: discord.Message, text: str, thread_id: str | None) -> None:
        if thread_id is not None:
            target = self.get_partial_messageable(int(thread_id))
            await target.send(render.text(text), allowed_mentions=render.NO_PINGS)
            return
        await message.reply(render.text(text), allowed_mentions=render.NO_PINGS)

    # --- reactions -----------------------------------------------------------------------

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        me = self.user
        if me is None or payload.user_id == me.id:
            return
        emoji = str(payload.emoji)
        if emoji not in REGENERATE_EMOJI and emoji not in DELETE_EMOJI:
            return
        gen = await self.engine.generation_for_message(
            PLATFORM, str(payload.channel_id), str(payload.message_id)
        )
        if gen is None:
            return
        if payload.member is not None:
            user: discord.abc.User = payload.member
            perms: discord.Permissions | None = payload.member.guild_permissions
        else:
            user = self.get_user(payload.user_id) or await self.fetch_user(payload.user_id)
            perms = None
        actor = actor_of(user, payload.guild_id, perms)
        try:
            if emoji in REGENERATE_EMOJI:
                await self.engine.regenerate(actor, gen.id)
            else:
                await self.engine.delete(actor, gen.id)
        except TmbotError as err:
            channel = self.get_partial_messageable(payload.channel_id)
            await channel.send(
                render.text(f"<@{payload.user_id}> {error_text(err)}"),
                allowed_mentions=discord.AllowedMentions(
                    everyone=False, roles=False, users=[discord.Object(payload.user_id)]
                ),
            )


def reply_text(reply: Reply) -> str:
    if isinstance(reply, KeyFormRequested):
        return "Use `/taste-key` to paste a key in a private form."
    return render.text(render_reply(reply))


def _is_image(text: str) -> bool:
    words = text.split()
    return bool(words) and words[0].lower() not in ACCOUNT_WORDS


# --- the app commands ------------------------------------------------------------------


def _choices(values: tuple[str, ...]) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=v, value=v) for v in values]


PROVIDER_CHOICES = [app_commands.Choice(name=p.value, value=p.value) for p in ProviderName]


def add_commands(bot: TasteBot) -> None:
    """``/taste`` for images (and any text of the grammar), companion commands for the
    account (private answers) and ``/taste-team`` for admins (Manage Server)."""
    tree = bot.tree

    async def ratio_choices(
        interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        model = getattr(interaction.namespace, "model", None)
        ratios = ratios_for(model if isinstance(model, str) else None)
        return _choices(tuple(r for r in ratios if r.startswith(current.strip())))[:25]

    @tree.command(name="taste", description="Make an image from a brief (flags work too)")
    @app_commands.describe(
        brief="What to draw; flags like --ar 3:4 work too (typed options win)",
        model="Model",
        aspect_ratio="Aspect ratio (the choices depend on the model)",
        resolution="Resolution",
        taste="Taste profile (The Taste Machine)",
        provider="Which provider's key to use",
        image="A reference image",
        image2="Another reference image",
        image3="Another reference image",
    )
    @app_commands.choices(
        model=_choices(MODELS),
        resolution=_choices(RESOLUTIONS),
        taste=_choices(TASTES),
        provider=PROVIDER_CHOICES,
    )
    @app_commands.autocomplete(aspect_ratio=ratio_choices)
    async def taste(
        interaction: discord.Interaction,
        brief: app_commands.Range[str, 1, 6000],
        model: str | None = None,
        aspect_ratio: str | None = None,
        resolution: str | None = None,
        taste: str | None = None,
        provider: str | None = None,
        image: discord.Attachment | None = None,
        image2: discord.Attachment | None = None,
        image3: discord.Attachment | None = None,
    ) -> None:
        typed = {
            "model": model,
            "aspect_ratio": aspect_ratio,
            "resolution": resolution,
            "taste": taste,
            "provider": provider,
        }
        text = with_options(brief, typed)
        urls = [a.url for a in (image, image2, image3) if a is not None]
        await bot.taste(interaction, " ".join([text, *urls]))

    @tree.command(name="taste-key", description="Bind your API key (private form)")
    @app_commands.choices(provider=PROVIDER_CHOICES)
    async def taste_key(interaction: discord.Interaction, provider: str | None = None) -> None:
        await bot.command(interaction, f"key --provider {provider}" if provider else "key")

    @tree.command(name="taste-logout", description="Remove your API key")
    @app_commands.choices(provider=PROVIDER_CHOICES)
    async def taste_logout(interaction: discord.Interaction, provider: str | None = None) -> None:
        await bot.command(interaction, f"logout --provider {provider}" if provider else "logout")

    @tree.command(name="taste-credits", description="Your keys, balances and use")
    async def taste_credits(interaction: discord.Interaction) -> None:
        await bot.command(interaction, "credits")

    @tree.command(name="taste-settings", description="Show or set your defaults (flags)")
    @app_commands.describe(flags="e.g. --ar 3:4 --res 4k, or `clear`; empty shows them")
    async def taste_settings(interaction: discord.Interaction, flags: str = "") -> None:
        await bot.command(interaction, f"settings {flags}".strip())

    @tree.command(name="taste-history", description="Your last images")
    async def taste_history(interaction: discord.Interaction) -> None:
        await bot.command(interaction, "history")

    @tree.command(
        name="taste-link", description="Link your accounts on Slack and Discord (private code)"
    )
    @app_commands.describe(code="The code `link` gave you on the other platform; empty: a code")
    async def taste_link(interaction: discord.Interaction, code: str | None = None) -> None:
        await bot.command(interaction, f"link {code}" if code else "link")

    @tree.command(name="taste-unlink", description="Unlink your accounts on Slack and Discord")
    async def taste_unlink(interaction: discord.Interaction) -> None:
        await bot.command(interaction, "unlink")

    @tree.command(name="taste-help", description="How to use tmbot")
    async def taste_help(interaction: discord.Interaction, topic: str = "") -> None:
        await bot.command(interaction, f"help {topic}".strip())

    team = app_commands.Group(
        name="taste-team",
        description="Team key, budgets and request channels (admins)",
        default_permissions=discord.Permissions(manage_guild=True),
        guild_only=True,
    )

    @team.command(name="show", description="The team key, budgets, channels and use")
    async def team_show(interaction: discord.Interaction) -> None:
        await bot.command(interaction, "team show")

    @team.command(name="key", description="Bind the team's API key (private form)")
    @app_commands.choices(provider=PROVIDER_CHOICES)
    async def team_key(interaction: discord.Interaction, provider: str | None = None) -> None:
        await bot.command(
            interaction, f"team key --provider {provider}" if provider else "team key"
        )

    @team.command(name="budget", description="A member's budget, e.g. 50/day (or `default`)")
    async def team_budget(
        interaction: discord.Interaction, amount: str, member: discord.Member | None = None
    ) -> None:
        who = member.mention if member is not None else "default"
        await bot.command(interaction, f"team budget {who} {amount}")

    @team.command(name="channel", description="Make this channel a request channel, or not")
    @app_commands.choices(state=_choices(("on", "off")))
    async def team_channel(interaction: discord.Interaction, state: str) -> None:
        await bot.command(interaction, f"team channel {state}")

    @team.command(name="link", description="Make this server one team with a Slack workspace")
    @app_commands.describe(code="The code `team link` gave an admin in Slack; empty: a code")
    async def team_link(interaction: discord.Interaction, code: str | None = None) -> None:
        await bot.command(interaction, f"team link {code}" if code else "team link")

    @team.command(name="unlink", description="Stop sharing the team with the Slack workspace")
    async def team_unlink(interaction: discord.Interaction) -> None:
        await bot.command(interaction, "team unlink")

    tree.add_command(team)
