"""The real discord.py client against the local fake Discord (tests/fakes/discord)."""

from __future__ import annotations

import asyncio
import io
import os
import re
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from tests.fakes.discord import FakeDiscord

MESSAGES = "/channels/{channel_id}/messages"
CALLBACK = "/interactions/{interaction_id}/{interaction_token}/callback"
FOLLOWUP = "/webhooks/{webhook_id}/{webhook_token}"
TIMEOUT = 10.0


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        yield server


def make_client(**options: Any) -> discord.Client:
    intents = options.pop("intents", discord.Intents.default())
    # discord.py waits guild_ready_timeout (2 s by default) after the last GUILD_CREATE
    # before it fires on_ready; the fake sends them all at once.
    return discord.Client(intents=intents, guild_ready_timeout=0.05, **options)


@asynccontextmanager
async def connected(fake: FakeDiscord, client: discord.Client) -> AsyncIterator[discord.Client]:
    """Log in and connect ``client`` to the fake; always close it (no unclosed sessions)."""
    with fake.patch_discord():
        task: asyncio.Task[None] | None = None
        try:
            await client.login(fake.token)
            task = asyncio.create_task(client.connect(reconnect=False))
            async with asyncio.timeout(TIMEOUT):
                await client.wait_until_ready()
            yield client
        finally:
            await client.close()
            if task is not None:
                await task


def general(fake: FakeDiscord, client: discord.Client) -> discord.TextChannel:
    assert fake.guild is not None
    channel = client.get_channel(fake.guild.text_channel("general").id)
    assert isinstance(channel, discord.TextChannel)
    return channel


async def test_json_answers_have_the_exact_content_type_and_need_the_bot_token(
    fake: FakeDiscord,
) -> None:
    async with aiohttp.ClientSession() as session:
        auth = {"Authorization": f"Bot {fake.token}"}
        async with session.get(fake.api_url + "/users/@me", headers=auth) as ok:
            assert ok.status == 200
            assert ok.headers["Content-Type"] == "application/json"
            assert (await ok.json())["id"] == str(fake.bot.id)
        async with session.get(fake.api_url + "/users/@me") as denied:
            assert denied.status == 401
            assert denied.headers["Content-Type"] == "application/json"
            assert await denied.json() == {"message": "401: Unauthorized", "code": 0}
        async with session.get(fake.api_url + "/nowhere", headers=auth) as missing:
            assert missing.status == 404
    assert [(c.method, c.route, c.status) for c in fake.calls] == [
        ("GET", "/users/@me", 200),
        ("GET", "/users/@me", 401),
        ("GET", "?", 404),
    ]
    assert all("Authorization" not in c.headers for c in fake.calls)


async def test_a_wrong_token_is_a_login_failure(fake: FakeDiscord) -> None:
    client = make_client()
    with fake.patch_discord():
        try:
            with pytest.raises(discord.LoginFailure):
                await client.login("not-the-token")
        finally:
            await client.close()


async def test_patch_discord_sets_and_restores_the_class_urls(fake: FakeDiscord) -> None:
    base, gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    with fake.patch_discord():
        assert fake.api_url == Route.BASE
        assert str(DiscordWebSocket.DEFAULT_GATEWAY) == fake.gateway_url
        assert Route("GET", "/users/@me").url == fake.api_url + "/users/@me"
    assert (base, gateway) == (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)


async def test_client_logs_in_identifies_and_caches_the_guild(fake: FakeDiscord) -> None:
    assert fake.guild is not None
    member_user = fake.add_user("alice")
    mods = fake.guild.add_role("mods", discord.Permissions(manage_messages=True).value)
    fake.guild.add_member(member_user, [mods])
    intents = discord.Intents.default()
    intents.message_content = True
    intents.members = True  # without it discord.py caches no other member from GUILD_CREATE
    async with connected(fake, make_client(intents=intents)) as client:
        assert client.user is not None and client.user.id == fake.bot.id
        assert client.application_id == fake.application_id
        guild = client.get_guild(fake.guild.id)
        assert guild is not None and guild.name == "Test Guild"
        assert [c.name for c in guild.text_channels] == ["general"]
        alice = guild.get_member(member_user.id)
        assert alice is not None and [r.name for r in alice.roles] == ["@everyone", "mods"]
        assert alice.guild_permissions.manage_messages
        assert guild.me.guild_permissions.attach_files
        assert not guild.me.guild_permissions.manage_messages
        assert guild.filesize_limit == 10 * 1024 * 1024
        assert guild.owner_id == fake.owner.id
    assert fake.identifies[-1]["intents"] == intents.value
    assert [c.route for c in fake.calls[:2]] == ["/users/@me", "/oauth2/applications/@me"]


async def test_autosharded_client_finds_the_gateway_through_gateway_bot(
    fake: FakeDiscord,
) -> None:
    client = discord.AutoShardedClient(intents=discord.Intents.default(), guild_ready_timeout=0.05)
    async with connected(fake, client):
        assert client.shard_count == 1
    assert fake.calls_to("GET", "/gateway/bot")


async def test_the_gateway_resumes_after_a_reconnect_request(fake: FakeDiscord) -> None:
    async with connected(fake, make_client()) as client:
        session = await fake.wait_ready()
        resumed = client.wait_for("resumed", timeout=TIMEOUT)
        await fake.send_op(7)  # RECONNECT: discord.py reconnects to resume_gateway_url
        await resumed
        assert session.ws is not None
        reaction = client.wait_for("raw_reaction_add", timeout=TIMEOUT)
        message = fake.message("still there?")
        assert await fake.dispatch("MESSAGE_REACTION_ADD", fake.reaction(message)) == 1
        assert (await reaction).message_id == int(message["id"])
    assert len(fake.identifies) == 1


class TasteBot(discord.Client):
    """A client with a command tree, synced to the fake's guild in setup_hook."""

    def __init__(self, guild_id: int) -> None:
        super().__init__(intents=discord.Intents.default(), guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)
        self.guild_id = guild_id
        self.seen: asyncio.Queue[Any] = asyncio.Queue()

    async def setup_hook(self) -> None:
        self.tree.copy_global_to(guild=discord.Object(self.guild_id))
        await self.tree.sync(guild=discord.Object(self.guild_id))


def taste_tree(client: TasteBot) -> None:
    @client.tree.command(name="taste", description="Generate an image")
    @app_commands.describe(brief="What to draw", ar="Aspect ratio")
    @app_commands.choices(
        ar=[
            app_commands.Choice(name="square", value="1:1"),
            app_commands.Choice(name="portrait", value="3:4"),
        ]
    )
    async def taste(
        interaction: discord.Interaction, brief: str, ar: app_commands.Choice[str], count: int = 1
    ) -> None:
        await interaction.response.defer()
        embed = discord.Embed(title="Queued", description=brief)
        sent = await interaction.followup.send(embed=embed, wait=True)
        await client.seen.put((brief, ar, count, sent))


async def test_slash_command_defer_followup_thread_upload_nonce_and_edit(
    fake: FakeDiscord,
) -> None:
    assert fake.guild is not None
    client = TasteBot(fake.guild.id)
    taste_tree(client)
    async with connected(fake, client):
        synced = fake.guild_commands[fake.guild.id]
        assert [c["name"] for c in synced] == ["taste"]
        ar = next(o for o in synced[0]["options"] if o["name"] == "ar")
        assert ar["type"] == 3 and ar["choices"] == [
            {"name": "square", "value": "1:1"},
            {"name": "portrait", "value": "3:4"},
        ]

        command = fake.slash_command("taste", {"brief": "x", "ar": "3:4", "count": 2})
        assert command["data"]["options"] == [
            {"name": "brief", "type": 3, "value": "x"},
            {"name": "ar", "type": 3, "value": "3:4"},
            {"name": "count", "type": 4, "value": 2},
        ]
        await fake.dispatch("INTERACTION_CREATE", command)
        async with asyncio.timeout(TIMEOUT):
            brief, choice, count, sent = await client.seen.get()
        assert (brief, choice.value, choice.name, count) == ("x", "3:4", "portrait", 2)

        defer = fake.calls_to("POST", CALLBACK)[0]
        assert defer.json == {"type": 5} and "Authorization" not in defer.headers
        followup = fake.calls_to("POST", FOLLOWUP)[0]
        assert followup.json["embeds"][0]["title"] == "Queued"
        assert followup.query["wait"] == "1"
        # The first followup after a defer replaces the "thinking" message.
        assert isinstance(sent, discord.WebhookMessage)
        assert sent.embeds[0].description == "x" and not sent.flags.loading

        # A followup's WebhookMessage has no guild (its channel is a PartialMessageable),
        # so discord.py refuses create_thread on it: go through the cached channel.
        assert sent.guild is None
        parent = general(fake, client)
        thread = await parent.get_partial_message(sent.id).create_thread(
            name="x", reason="brief thread"
        )
        assert thread.id == sent.id and thread.parent_id == sent.channel.id
        made = fake.calls_to("POST", MESSAGES + "/{message_id}/threads")[0]
        assert made.audit_log_reason == "brief thread"
        png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4

        async def upload() -> discord.Message:
            return await thread.send(
                "done",
                file=discord.File(io.BytesIO(png), filename="taste.png"),
                nonce="gen-42",
                allowed_mentions=discord.AllowedMentions.none(),
            )

        first = await upload()
        again = await upload()
        assert again.id == first.id
        assert [m["id"] for m in fake.channel_messages(thread.id)] == [str(first.id)]
        call = fake.calls_to("POST", MESSAGES)[0]
        assert call.params["channel_id"] == str(thread.id)
        assert [(f.field, f.filename, f.data) for f in call.files] == [
            ("files[0]", "taste.png", png)
        ]
        assert call.json["allowed_mentions"] == {"parse": []}
        assert call.json["nonce"] == "gen-42" and call.json["enforce_nonce"] is True
        assert first.attachments[0].size == len(png)
        assert await first.attachments[0].read() == png

        edited = await first.edit(embed=discord.Embed(title="Final"))
        assert edited.edited_at is not None
        patch = fake.calls_to("PATCH", MESSAGES + "/{message_id}")[0]
        assert patch.json["embeds"][0]["title"] == "Final"
        assert fake.messages[first.id]["embeds"][0]["title"] == "Final"


async def test_the_fake_answers_a_second_callback_like_discord(fake: FakeDiscord) -> None:
    assert fake.guild is not None
    client = TasteBot(fake.guild.id)
    errors: asyncio.Queue[BaseException] = asyncio.Queue()

    @client.tree.command(name="ping", description="twice")
    async def ping(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("pong")
        response = interaction.response
        response._response_type = None  # pretend we forgot; Discord refuses the second one
        try:
            await interaction.response.send_message("again")
        except discord.HTTPException as exc:
            await errors.put(exc)

    async with connected(fake, client):
        await fake.dispatch("INTERACTION_CREATE", fake.slash_command("ping"))
        async with asyncio.timeout(TIMEOUT):
            exc = await errors.get()
    assert isinstance(exc, discord.HTTPException) and exc.code == 40060
    assert [m["content"] for m in fake.messages.values()] == ["pong"]


async def test_on_raw_reaction_add_fires_for_an_injected_reaction(fake: FakeDiscord) -> None:
    alice = fake.add_user("alice")
    async with connected(fake, make_client()) as client:
        sent = await general(fake, client).send("react to me")
        waiter = client.wait_for("raw_reaction_add", check=lambda p: p.user_id == alice.id)
        await fake.dispatch("MESSAGE_REACTION_ADD", fake.reaction(sent.id, "👍", alice))
        async with asyncio.timeout(TIMEOUT):
            payload = await waiter
        assert payload.message_id == sent.id and payload.emoji.name == "👍"
        assert payload.member is not None and payload.member.id == alice.id
        assert payload.message_author_id == fake.bot.id

        own = client.wait_for("raw_reaction_add", timeout=TIMEOUT)
        await sent.add_reaction("✅")
        assert (await own).user_id == fake.bot.id
        assert (
            fake.calls_to("PUT", MESSAGES + "/{message_id}/reactions/{emoji}/@me")[0].params[
                "emoji"
            ]
            == "✅"
        )


class Persistent(discord.ui.View):
    def __init__(self, pressed: asyncio.Queue[str]) -> None:
        super().__init__(timeout=None)
        self.pressed = pressed

    @discord.ui.button(label="Retry", custom_id="tmbot:retry", style=discord.ButtonStyle.primary)
    async def retry(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        await interaction.response.defer()
        await self.pressed.put(button.custom_id or "")


class Again(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"tmbot:again:(?P<gen>\w+)"):
    pressed: asyncio.Queue[str] = asyncio.Queue()

    def __init__(self, gen: str) -> None:
        super().__init__(discord.ui.Button(label="Again", custom_id=f"tmbot:again:{gen}"))
        self.gen = gen

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> Again:
        return cls(match["gen"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.edit_message(content=f"again {self.gen}")
        await self.pressed.put(self.gen)


async def test_persistent_view_and_dynamic_item_receive_button_presses(
    fake: FakeDiscord,
) -> None:
    pressed: asyncio.Queue[str] = asyncio.Queue()
    Again.pressed = asyncio.Queue()
    client = make_client()
    client.add_view(Persistent(pressed))
    client.add_dynamic_items(Again)
    async with connected(fake, client):
        # A message the bot sent before it restarted: its views are not in the client's
        # store, so only add_view / add_dynamic_items can route the presses. (Pressing a
        # message sent in this run would reach the view instance it was sent with.)
        view = discord.ui.View(timeout=None)
        view.add_item(discord.ui.Button(label="Retry", custom_id="tmbot:retry"))
        view.add_item(Again("g7"))
        earlier = fake.message("result", author=fake.bot)
        earlier["components"] = [c for c in view.to_components()]
        sent = await general(fake, client).fetch_message(int(earlier["id"]))
        assert [c.custom_id for c in sent.components[0].children] == [  # type: ignore[union-attr]
            "tmbot:retry",
            "tmbot:again:g7",
        ]

        await fake.dispatch("INTERACTION_CREATE", fake.button_press(sent.id, "tmbot:retry"))
        async with asyncio.timeout(TIMEOUT):
            assert await pressed.get() == "tmbot:retry"
        await fake.dispatch("INTERACTION_CREATE", fake.button_press(sent.id, "tmbot:again:g7"))
        async with asyncio.timeout(TIMEOUT):
            assert await Again.pressed.get() == "g7"
    kinds = [c.json["type"] for c in fake.calls_to("POST", CALLBACK)]
    assert kinds == [6, 7]
    assert fake.messages[sent.id]["content"] == "again g7"


class BriefModal(discord.ui.Modal, title="Edit brief"):
    brief: discord.ui.TextInput[Any] = discord.ui.TextInput(label="Brief", custom_id="brief")

    def __init__(self, submitted: asyncio.Queue[str]) -> None:
        super().__init__(custom_id="tmbot:brief-modal")
        self.submitted = submitted

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("thanks", ephemeral=True)
        await self.submitted.put(self.brief.value)


async def test_modal_sent_and_submitted(fake: FakeDiscord) -> None:
    assert fake.guild is not None
    submitted: asyncio.Queue[str] = asyncio.Queue()
    client = TasteBot(fake.guild.id)

    @client.tree.command(name="edit", description="Edit a brief")
    async def edit(interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(BriefModal(submitted))

    async with connected(fake, client):
        await fake.dispatch("INTERACTION_CREATE", fake.slash_command("edit"))
        modal_call = await fake.wait_for(lambda c: c.route == CALLBACK and c.json["type"] == 9)
        data = modal_call.json["data"]
        assert data["custom_id"] == "tmbot:brief-modal" and data["title"] == "Edit brief"
        submit = fake.modal_submit(data["custom_id"], {"brief": "a red fox"})
        await fake.dispatch("INTERACTION_CREATE", submit)
        async with asyncio.timeout(TIMEOUT):
            assert await submitted.get() == "a red fox"
    answer = fake.calls_to("POST", CALLBACK)[-1]
    assert answer.json == {"type": 4, "data": {"tts": False, "content": "thanks", "flags": 64}}
    (reply,) = [m for m in fake.messages.values() if m["content"] == "thanks"]
    assert reply["flags"] == 64 and reply["interaction_metadata"]["type"] == 5


async def test_rate_limited_calls_are_retried_by_discord_py(fake: FakeDiscord) -> None:
    async with connected(fake, make_client()) as client:
        fake.rate_limit_next(MESSAGES, retry_after=0.05, method="POST")
        sent = await general(fake, client).send("after a 429")
        assert sent.content == "after a 429"
    statuses = [c.status for c in fake.calls_to("POST", MESSAGES)]
    assert statuses == [429, 200]
    assert len(fake.channel_messages(sent.channel.id)) == 1


async def test_injected_errors_become_discord_py_exceptions(fake: FakeDiscord) -> None:
    assert fake.guild is not None
    fake.guild.filesize_limit = 1024
    async with connected(fake, make_client()) as client:
        channel = general(fake, client)
        with pytest.raises(discord.HTTPException) as too_big:
            await channel.send(file=discord.File(io.BytesIO(b"x" * 2048), filename="big.png"))
        assert (too_big.value.status, too_big.value.code) == (413, 40005)

        fake.fail_next(MESSAGES, 403, 50013, "Missing Permissions", method="POST")
        with pytest.raises(discord.Forbidden) as forbidden:
            await channel.send("nope")
        assert forbidden.value.code == 50013

        with pytest.raises(discord.HTTPException) as empty:
            await channel.send()
        assert empty.value.code == 50006
    assert fake.channel_messages(channel.id) == []


async def test_a_mention_reaches_on_message_without_the_content_intent(fake: FakeDiscord) -> None:
    alice = fake.add_user("alice")
    async with connected(fake, make_client()) as client:
        assert client.user is not None
        got = client.wait_for("message", check=lambda m: m.author.id == alice.id)
        await fake.dispatch("MESSAGE_CREATE", fake.message("no mention here", author=alice))
        async with asyncio.timeout(TIMEOUT):
            plain = await got
        assert plain.content == ""  # no MESSAGE_CONTENT intent: Discord blanks it

        got = client.wait_for("message", check=lambda m: m.author.id == alice.id)
        await fake.dispatch(
            "MESSAGE_CREATE", fake.message(f"{fake.bot.mention} draw a cat", author=alice)
        )
        async with asyncio.timeout(TIMEOUT):
            message = await got
        assert message.content == f"<@{fake.bot.id}> draw a cat"
        assert client.user.mentioned_in(message)
        assert isinstance(message.author, discord.Member)

        sent = await general(fake, client).send("thread parent")
        thread = await sent.create_thread(name="talk")
        got = client.wait_for("message", check=lambda m: m.author.id == alice.id)
        reply = fake.message(
            f"<@{fake.bot.id}> again", author=alice, channel=thread.id, reply_to=sent.id
        )
        await fake.dispatch("MESSAGE_CREATE", reply)
        async with asyncio.timeout(TIMEOUT):
            in_thread = await got
        assert isinstance(in_thread.channel, discord.Thread)
        assert in_thread.channel.parent_id == sent.channel.id
        assert in_thread.reference is not None and in_thread.reference.message_id == sent.id


async def test_wait_for_sees_calls_made_before_and_after(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as session:

        async def get_me() -> None:
            headers = {"Authorization": f"Bot {fake.token}"}
            async with session.get(fake.api_url + "/users/@me", headers=headers) as r:
                await r.read()

        await get_me()
        assert (await fake.wait_for_call("GET", "/users/@me")).seq == 0
        later: Callable[[Any], bool] = lambda c: c.seq == 1  # noqa: E731
        waiter = asyncio.create_task(fake.wait_for(later))
        await get_me()
        assert (await waiter).route == "/users/@me"
        with pytest.raises(TimeoutError):
            await fake.wait_for(lambda c: c.seq == 5, timeout=0.05)


async def test_privileged_intents_not_enabled_for_the_app_close_the_gateway(
    fake: FakeDiscord,
) -> None:
    fake.privileged_intents = 0
    intents = discord.Intents.default()
    intents.message_content = True
    client = make_client(intents=intents)
    with fake.patch_discord():
        try:
            await client.login(fake.token)
            with pytest.raises(discord.PrivilegedIntentsRequired):
                await client.connect()
        finally:
            await client.close()


class QuickReidentify(discord.Client):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py sleeps 5 s before every non-initial IDENTIFY; the fake needs no pause."""


async def test_an_invalidated_session_identifies_again_on_the_default_gateway(
    fake: FakeDiscord,
) -> None:
    client = QuickReidentify(intents=discord.Intents.default(), guild_ready_timeout=0.05)
    async with connected(fake, client):
        ready = client.wait_for("ready", timeout=TIMEOUT)
        await fake.send_op(9, False)  # INVALID_SESSION, not resumable
        await ready
        assert len(fake.identifies) == 2
        assert len([s for s in fake.sessions.values() if s.ws is not None]) == 1


async def test_autocomplete_request_and_choices(fake: FakeDiscord) -> None:
    assert fake.guild is not None
    client = TasteBot(fake.guild.id)

    async def styles(interaction: discord.Interaction, current: str) -> list[Any]:
        return [app_commands.Choice(name=s, value=s) for s in ("cat", "castle") if current in s]

    @client.tree.command(name="style", description="Pick a style")
    @app_commands.autocomplete(name=styles)
    async def style(interaction: discord.Interaction, name: str) -> None:
        await interaction.response.send_message(name)

    async with connected(fake, client):
        request = fake.autocomplete("style", {"name": "cas"}, focused="name")
        assert request["type"] == 4
        await fake.dispatch("INTERACTION_CREATE", request)
        answer = await fake.wait_for(lambda c: c.route == CALLBACK)
    assert answer.json == {"type": 8, "data": {"choices": [{"name": "castle", "value": "castle"}]}}


async def test_direct_messages_keep_their_content_and_reach_a_dm_channel(
    fake: FakeDiscord,
) -> None:
    alice = fake.add_user("alice")
    async with connected(fake, make_client()) as client:
        got = client.wait_for("message", check=lambda m: m.author.id == alice.id)
        dm = fake.message("hello bot", author=alice, channel=fake.dm_channel(alice))
        await fake.dispatch("MESSAGE_CREATE", dm)
        async with asyncio.timeout(TIMEOUT):
            message = await got
        assert isinstance(message.channel, discord.DMChannel)
        assert message.content == "hello bot" and message.guild is None
        await message.channel.send("hi alice")
        user = await client.fetch_user(alice.id)
        channel = await user.create_dm()
        assert channel.id == message.channel.id
    assert [m["content"] for m in fake.channel_messages(channel.id)] == ["hello bot", "hi alice"]


SUBPROCESS_BOT = """
import asyncio, os, sys, warnings
warnings.simplefilter("ignore", DeprecationWarning)
import discord, yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

Route.BASE = os.environ["DISCORD_API_URL"]

async def main():
    client = discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.05)
    await client.login(os.environ["DISCORD_TOKEN"])
    _, url, _ = await client.http.get_bot_gateway()
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
    task = asyncio.create_task(client.connect(reconnect=False))
    await asyncio.wait_for(client.wait_until_ready(), 10)
    print(client.user.id, [g.name for g in client.guilds], flush=True)
    await client.close()
    await task

asyncio.run(main())
"""


async def test_a_separate_process_reaches_the_fake_through_its_api_url(
    fake: FakeDiscord,
) -> None:
    env = {**os.environ, "DISCORD_API_URL": fake.api_url, "DISCORD_TOKEN": fake.token}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SUBPROCESS_BOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert out.decode().split() == [str(fake.bot.id), "['Test", "Guild']"]
    assert fake.identifies and fake.calls_to("GET", "/gateway/bot")
