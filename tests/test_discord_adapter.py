"""The Discord adapter end to end in-process: the real discord.py client against the fake
Discord, the real bot (SQLite, vault, scheduler, engine, dispatcher) on the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import discord
import pytest

from adapters.discord import PLATFORM
from adapters.discord.main import PERMISSIONS, invite_url
from adapters.discord.options import with_options
from tests.discord_helpers import CALLBACK, FOLLOWUP, MESSAGE, MESSAGES, THREADS, running
from tests.fakes.discord import FakeDiscord
from tmbot import Actor, ApiKey, Delivered, MessageLink, Notice, ProviderName, tenant_of
from tmbot.simulator import SimConfig, Simulator

KEY = "tm_test_discordAAAA0001"
BOB_KEY = "tm_test_discordBBBB0002"


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        yield server


async def test_taste_with_typed_options_defers_posts_a_card_a_thread_and_the_file(
    tmp_path: Path, sim: Simulator, fake: FakeDiscord
) -> None:
    async with running(tmp_path, sim, fake) as bot:
        await bot.bind(fake.owner, KEY)
        command = fake.slash_command(
            "taste",
            {"brief": "a red fox in snow --ar 16:9 --res 1k", "aspect_ratio": "3:4"},
        )
        await fake.dispatch("INTERACTION_CREATE", command)
        (upload,) = await bot.upload()
        await bot.settled()
        (gen,) = await bot.generations(fake.owner)
    # typed option wins over the flag; the other flag stays
    assert (gen.spec.aspect_ratio, gen.spec.resolution) == ("3:4", "1k")
    assert gen.spec.brief == "a red fox in snow"
    defer = fake.calls_to("POST", CALLBACK)[0]
    assert defer.json["type"] == 5
    assert fake.calls_to("POST", FOLLOWUP)
    thread_call = fake.calls_to("POST", THREADS)[0]
    card_id = int(thread_call.params["message_id"])
    # the image is a file in the card's thread (the thread has the card's id)
    assert upload.params["channel_id"] == str(card_id)
    assert upload.files[0].filename.endswith(".png")
    assert upload.json["nonce"] == f"tmbot-{gen.id}" and upload.json["enforce_nonce"] is True
    assert upload.json["allowed_mentions"] == {"parse": []}
    custom_ids = [c["custom_id"] for row in upload.json["components"] for c in row["components"]]
    assert custom_ids == [
        f"tmbot:again:{gen.id}",
        f"tmbot:refine:{gen.id}",
        f"tmbot:delete:{gen.id}",
    ]
    # the card was edited (accepted -> ... -> done)
    edits = [c for c in fake.calls_to("PATCH", MESSAGE) if c.params["message_id"] == str(card_id)]
    assert edits and edits[-1].json["embeds"][0]["title"].endswith("Done")
    assert fake.messages[card_id]["embeds"][0]["title"].endswith("Done")
    # the card is public: it says whose key pays, by fingerprint, not "your key"
    fields = {f["name"]: f["value"] for f in fake.messages[card_id]["embeds"][0]["fields"]}
    assert fields["Key"].startswith(f"{gen.actor.label}'s key …"), fields


async def test_flags_in_the_brief_work_without_typed_options(
    tmp_path: Path, sim: Simulator, fake: FakeDiscord
) -> None:
    async with running(tmp_path, sim, fake) as bot:
        await bot.bind(fake.owner, KEY)
        await fake.dispatch(
            "INTERACTION_CREATE", fake.slash_command("taste", {"brief": "a lake --ar 16:9 --fast"})
        )
        await bot.upload()
        await bot.settled()
        (gen,) = await bot.generations(fake.owner)
    assert (gen.spec.aspect_ratio, gen.spec.model) == ("16:9", "nano-banana-2")


async def test_a_bad_brief_is_one_private_sentence_and_no_card(
    tmp_path: Path, sim: Simulator, fake: FakeDiscord
) -> None:
    async with running(tmp_path, sim, fake) as bot:
        await bot.bind(fake.owner, KEY)
        await fake.dispatch(
            "INTERACTION_CREATE", fake.slash_command("taste", {"brief": "a lake --ar 3x4"})
        )
        answer = await fake.wait_for(
            lambda c: c.route == FOLLOWUP and c.method == "POST" and "content" in (c.json or {})
        )
    assert answer.json["flags"] == 64 and "3:4" in answer.json["content"]
    assert not fake.calls_to("POST", THREADS)


async def test_a_mention_is_a_brief_in_a_thread_from_the_message_and_pings_nobody(
    tmp_path: Path, sim: Simulator, fake: FakeDiscord
) -> None:
    alice = fake.add_user("alice")
    async with running(tmp_path, sim, fake) as bot:
        await bot.bind(alice, KEY)
        message = fake.message(
            f"{fake.bot.mention} @everyone a poster for <@&123> @here --ar 3:4", author=alice
        )
        message["attachments"] = [
            {
                "id": "991",
                "filename": "ref.png",
                "size": 10,
                "url": "https://cdn.example.com/ref.png",
                "proxy_url": "https://media.example.com/ref.png",
            }
        ]
        await fake.dispatch("MESSAGE_CREATE", message)
        (upload,) = await bot.upload()
        await bot.settled()
        (gen,) = await bot.generations(alice)
    thread = fake.calls_to("POST", THREADS)[0]
    assert thread.params["message_id"] == message["id"]  # from the person's message
    assert upload.params["channel_id"] == message["id"]  # the image in that thread
    assert gen.spec.aspect_ratio == "3:4"
    assert gen.spec.image_urls == ("https://cdn.example.com/ref.png",)
    for call in fake.calls_to("POST", MESSAGES):
        assert call.json["allowed_mentions"] == {"parse": []}
    card = next(c for c in fake.calls_to("POST", MESSAGES) if c.json.get("embeds"))
    assert card.params["channel_id"] == message["id"]  # the card is in the thread too


async def test_reactions_regenerate_into_the_same_thread_billed_to_the_reactor_once(
    tmp_path: Path, sim: Simulator, fake: FakeDiscord
) -> None:
    bob = fake.add_user("bob")
    async with running(tmp_path, sim, fake) as bot:
        await bot.bind(fake.owner, KEY)
        await bot.bind(bob, BOB_KEY)
        await fake.dispatch("INTERACTION_CREATE", fake.slash_command("taste", {"brief": "a cat"}))
        await bot.upload()
        await bot.settled()
        (first,) = await bot.generations(fake.owner)
        card_id = int(fake.calls_to("POST", THREADS)[0].params["message_id"])
        await fake.dispatch("MESSAGE_REACTION_ADD", fake.reaction(card_id, "🔁", bob))
        await bot.upload(2)
        image = next(m for m in fake.channel_messages(card_id) if m.get("attachments"))
        image_id = int(image["id"])
        await fake.dispatch("MESSAGE_REACTION_ADD", fake.reaction(image_id, "🔄", bob))
        await bot.settled()
        (again,) = await bot.generations(bob)
    assert again.regenerated_from == first.id
    assert again.key.owner == str(bob.id)  # bob pays, with his own key
    assert again.place.thread == str(card_id)
    uploads = [c for c in fake.calls_to("POST", MESSAGES) if c.files]
    assert len(uploads) == 2  # the second reaction within the window counted once
    assert {c.params["channel_id"] for c in uploads} == {str(card_id)}


async def test_delete_reaction_by_the_requester_removes_the_image_and_marks_the_card(
    tmp_path: Path, sim: Simulator, fake: FakeDiscord
) -> None:
    alice = fake.add_user("alice")
    async with running(tmp_path, sim, fake) as bot:
        await bot.bind(fake.owner, KEY)
        await fake.dispatch("INTERACTION_CREATE", fake.slash_command("taste", {"brief": "a cat"}))
        await bot.upload()
        await bot.settled()
        card_id = int(fake.calls_to("POST", THREADS)[0].params["message_id"])
        await fake.dispatch("MESSAGE_REACTION_ADD", fake.reaction(card_id, "❌", alice))
        refused = await fake.wait_for(
            lambda c: (
                c.method == "POST" and c.route == MESSAGES and "<@" in c.json.get("content", "")
            )
        )
        await fake.dispatch("MESSAGE_REACTION_ADD", fake.reaction(card_id, "🗑️", fake.owner))
        await fake.wait_for(lambda c: c.method == "DELETE" and c.route == MESSAGE)
        await bot.settled()
    assert [int(u) for u in refused.json["allowed_mentions"]["users"]] == [alice.id]
    assert fake.messages[card_id]["embeds"][0]["title"].startswith("🎨 Deleted by")
    assert not [m for m in fake.channel_messages(card_id) if m.get("attachments")]


async def test_buttons_work_after_a_restart_of_the_bot(
    tmp_path: Path, sim: Simulator, fake: FakeDiscord
) -> None:
    async with running(tmp_path, sim, fake) as bot:
        await bot.bind(fake.owner, KEY)
        await fake.dispatch("INTERACTION_CREATE", fake.slash_command("taste", {"brief": "a cat"}))
        await bot.upload()
        await bot.settled()
        (first,) = await bot.generations(fake.owner)
    card_id = int(fake.calls_to("POST", THREADS)[0].params["message_id"])
    image = next(m for m in fake.channel_messages(card_id) if m.get("attachments"))
    async with running(tmp_path, sim, fake) as bot:  # a new process: same database
        press = fake.button_press(int(image["id"]), f"tmbot:again:{first.id}")
        await fake.dispatch("INTERACTION_CREATE", press)
        await bot.upload(2)
        answer = await fake.wait_for(
            lambda c: (
                c.route == FOLLOWUP
                and c.method == "POST"
                and "another" in c.json.get("content", "")
            )
        )
        await bot.settled()
        newest, _ = await bot.generations(fake.owner)
        await fake.dispatch(
            "INTERACTION_CREATE", fake.button_press(int(image["id"]), f"tmbot:refine:{first.id}")
        )
        modal = await fake.wait_for(lambda c: c.route == CALLBACK and c.json["type"] == 9)
        submit = fake.modal_submit(modal.json["data"]["custom_id"], {"words": "in blue --ar 16:9"})
        await fake.dispatch("INTERACTION_CREATE", submit)
        await bot.upload(3)
        await bot.settled()
        refined = (await bot.generations(fake.owner))[0]
    assert answer.json["flags"] == 64
    assert newest.regenerated_from == first.id and newest.place.thread == str(card_id)
    assert refined.spec.brief == "a cat in blue" and refined.spec.aspect_ratio == "16:9"


async def test_the_key_modal_binds_a_key_that_never_appears_in_a_recorded_call(
    tmp_path: Path, sim: Simulator, fake: FakeDiscord
) -> None:
    alice = fake.add_user("alice")
    async with running(tmp_path, sim, fake):
        await fake.dispatch("INTERACTION_CREATE", fake.slash_command("taste-key", user=alice))
        modal = await fake.wait_for(lambda c: c.route == CALLBACK and c.json["type"] == 9)
        custom_id = modal.json["data"]["custom_id"]
        submit = fake.modal_submit(custom_id, {"key": KEY}, user=alice)
        await fake.dispatch("INTERACTION_CREATE", submit)
        answer = await fake.wait_for(
            lambda c: (
                c.route == FOLLOWUP and c.method == "POST" and "Saved" in c.json.get("content", "")
            )
        )
    assert answer.json["flags"] == 64 and KEY[-4:] in answer.json["content"]
    # discord.py's modal and the restart-proof route both saw the submit: one answered
    saved = [c for c in fake.calls_to("POST", FOLLOWUP) if "Saved" in c.json.get("content", "")]
    assert len(saved) == 1 and all(c.status < 400 for c in fake.calls)
    for call in fake.calls:
        seen = repr((call.path, call.query, call.headers, call.json))
        assert KEY not in seen and all(KEY.encode() not in f.data for f in call.files)


async def test_team_commands_are_hidden_from_members_and_refused_by_the_core(
    tmp_path: Path, sim: Simulator, fake: FakeDiscord
) -> None:
    assert fake.guild is not None
    alice = fake.add_user("alice")
    async with running(tmp_path, sim, fake):
        synced = {c["name"]: c for c in fake.guild_commands[fake.guild.id]}
        assert int(synced["taste-team"]["default_member_permissions"]) == 1 << 5  # Manage Server
        command = fake.slash_command("taste-team", subcommand="show", user=alice)
        await fake.dispatch("INTERACTION_CREATE", command)
        answer = await fake.wait_for(lambda c: c.route == FOLLOWUP and c.method == "POST")
    assert answer.json["flags"] == 64 and "admin" in answer.json["content"]


async def test_an_image_over_the_upload_limit_is_re_encoded_under_it(
    tmp_path: Path, sim: Simulator, fake: FakeDiscord
) -> None:
    assert fake.guild is not None
    fake.guild.filesize_limit = 10_000  # below the simulator's PNG: Discord answers 413
    async with running(tmp_path, sim, fake) as bot:
        await bot.bind(fake.owner, KEY)
        await fake.dispatch("INTERACTION_CREATE", fake.slash_command("taste", {"brief": "a cat"}))
        (upload,) = await bot.upload()
        await bot.settled()
    refused = [c for c in fake.calls_to("POST", MESSAGES) if c.files and c.status == 413]
    assert refused and len(refused[0].files[0].data) > 10_000
    assert len(upload.files[0].data) <= 10_000
    assert upload.files[0].filename.endswith((".webp", ".jpg"))


async def test_a_request_channel_makes_every_message_a_brief_and_thread_replies_refine(
    tmp_path: Path, sim: Simulator, fake: FakeDiscord
) -> None:
    assert fake.guild is not None
    alice = fake.add_user("alice")
    general = fake.guild.text_channel("general").id
    async with running(tmp_path, sim, fake, message_content=True) as bot:
        await bot.bind(alice, KEY)
        on = fake.slash_command("taste-team", {"state": "on"}, subcommand="channel")
        await fake.dispatch("INTERACTION_CREATE", on)
        await fake.wait_for(
            lambda c: c.route == FOLLOWUP and "request channel" in c.json.get("content", "")
        )
        message = fake.message("a quiet harbour at dusk", author=alice, channel=general)
        await fake.dispatch("MESSAGE_CREATE", message)
        await bot.upload()
        await bot.settled()
        thread_id = int(message["id"])
        refine = fake.message("make it foggy --ar 16:9", author=alice, channel=thread_id)
        await fake.dispatch("MESSAGE_CREATE", refine)
        await bot.upload(2)
        await bot.settled()
        refined, first = await bot.generations(alice)
    assert first.spec.brief == "a quiet harbour at dusk"
    assert refined.regenerated_from == first.id
    assert refined.spec.brief == "a quiet harbour at dusk make it foggy"
    assert refined.place.thread == str(thread_id)


async def test_a_direct_message_is_a_brief_answered_in_place(
    tmp_path: Path, sim: Simulator, fake: FakeDiscord
) -> None:
    alice = fake.add_user("alice")
    dm = fake.dm_channel(alice)
    async with running(tmp_path, sim, fake) as bot:
        dm_actor = Actor(PLATFORM, tenant_of(PLATFORM, f"dm:{alice.id}"), str(alice.id))
        await bot.runtime.engine.bind_key(dm_actor, ProviderName.TASTEMACHINE, ApiKey(KEY))
        await fake.dispatch(
            "MESSAGE_CREATE", fake.message("a paper boat", author=alice, channel=dm)
        )
        (upload,) = await bot.upload()
        await bot.settled()
    assert upload.params["channel_id"] == str(dm.id)
    assert not fake.calls_to("POST", THREADS)


async def test_a_long_brief_is_cut_with_an_ellipsis_on_the_card(
    tmp_path: Path, sim: Simulator, fake: FakeDiscord
) -> None:
    brief = ("a very long brief about a city at night " * 70)[:2500]
    async with running(tmp_path, sim, fake) as bot:
        await bot.bind(fake.owner, KEY)
        await fake.dispatch("INTERACTION_CREATE", fake.slash_command("taste", {"brief": brief}))
        await bot.upload()
        await bot.settled()
    card_id = int(fake.calls_to("POST", THREADS)[0].params["message_id"])
    description = fake.messages[card_id]["embeds"][0]["description"]
    assert description.endswith("…") and len(description) <= 1500
    assert len(fake.calls_to("POST", THREADS)[0].json["name"]) <= 100
    assert all(c.status < 400 for c in fake.calls)


def test_the_invite_url_asks_for_exactly_the_permissions_the_code_uses() -> None:
    url = invite_url("1234")
    query = parse_qs(urlparse(url).query)
    assert query["client_id"] == ["1234"]
    assert query["scope"] == ["bot applications.commands"]
    permissions = discord.Permissions(int(query["permissions"][0]))
    assert permissions == PERMISSIONS
    assert {name for name, on in permissions if on} == {
        "read_messages",  # discord.py's name for View Channel
        "send_messages",
        "send_messages_in_threads",
        "create_public_threads",
        "embed_links",
        "attach_files",
        "read_message_history",
    }


def test_typed_options_replace_the_flags_for_their_field() -> None:
    typed = {"aspect_ratio": "3:4", "model": "nano-banana-2", "resolution": None}
    text = with_options("a fox --ar=16:9 --pro —ar 1:1 --res 4k", typed)
    assert text == "a fox --res 4k --ar 3:4 --model nano-banana-2"
    assert with_options("a fox --ar 16:9", {}) == "a fox --ar 16:9"


@pytest.mark.parametrize("interval", [0.0, 3600.0])
async def test_progress_edits_are_coalesced_and_the_final_edit_always_comes(
    tmp_path: Path, sim: Simulator, fake: FakeDiscord, interval: float
) -> None:
    async with running(tmp_path, sim, fake) as bot:
        bot.bot.notifier.edit_interval = interval
        await bot.bind(fake.owner, KEY)
        await fake.dispatch("INTERACTION_CREATE", fake.slash_command("taste", {"brief": "a cat"}))
        await bot.upload()
        await bot.settled()
        assert not bot.bot.notifier._timers  # the final edit cancelled the waiting one
    card_id = int(fake.calls_to("POST", THREADS)[0].params["message_id"])
    edits = [c for c in fake.calls_to("PATCH", MESSAGE) if c.params["message_id"] == str(card_id)]
    titles = [c.json["embeds"][0]["title"] for c in edits]
    if interval:
        assert titles == ["🎨 Accepted", "🎨 Done"]  # progress waited, the final replaced it
    else:
        assert titles[0] == "🎨 Accepted" and titles[-1] == "🎨 Done"
        assert any(t.startswith("🎨 Generating") for t in titles)


async def test_a_private_command_in_a_mention_points_to_its_slash_command(
    tmp_path: Path, sim: Simulator, fake: FakeDiscord
) -> None:
    alice = fake.add_user("alice")
    async with running(tmp_path, sim, fake) as bot:
        await bot.bind(alice, KEY)
        message = fake.message(f"{fake.bot.mention} credits", author=alice)
        await fake.dispatch("MESSAGE_CREATE", message)
        answer = await fake.wait_for(lambda c: c.method == "POST" and c.route == MESSAGES)
        assert not await bot.generations(alice)
    assert "/taste-credits" in answer.json["content"]
    assert str(answer.json["message_reference"]["message_id"]) == message["id"]


async def test_where_threads_are_not_allowed_the_image_goes_in_place(
    tmp_path: Path, sim: Simulator, fake: FakeDiscord
) -> None:
    assert fake.guild is not None
    fake.fail_next(THREADS, 403, 50013, "Missing Permissions", method="POST")
    async with running(tmp_path, sim, fake) as bot:
        await bot.bind(fake.owner, KEY)
        await fake.dispatch("INTERACTION_CREATE", fake.slash_command("taste", {"brief": "a cat"}))
        (upload,) = await bot.upload()
        await bot.settled()
    assert upload.params["channel_id"] == str(fake.guild.text_channel("general").id)


async def test_a_failure_is_said_on_the_card_and_in_the_thread(
    tmp_path: Path, fake: FakeDiscord
) -> None:
    config = SimConfig(time_scale=60.0, estimate_seconds=5.0, task_failure_rate=1.0, seed=1)
    async with Simulator(config) as failing, running(tmp_path, failing, fake) as bot:
        await bot.bind(fake.owner, KEY)
        await fake.dispatch("INTERACTION_CREATE", fake.slash_command("taste", {"brief": "a cat"}))
        said = await fake.wait_for(
            lambda c: c.method == "POST" and c.route == MESSAGES and "❌" in c.json["content"]
        )
        await bot.settled()
    card_id = int(fake.calls_to("POST", THREADS)[0].params["message_id"])
    assert said.params["channel_id"] == str(card_id)
    assert fake.messages[card_id]["embeds"][0]["title"].startswith("🎨 Failed — ")


async def test_aspect_ratios_autocomplete_from_the_chosen_model(
    tmp_path: Path, sim: Simulator, fake: FakeDiscord
) -> None:
    async with running(tmp_path, sim, fake):
        options = {"brief": "x", "model": "nano-banana-pro", "aspect_ratio": "1:"}
        await fake.dispatch(
            "INTERACTION_CREATE", fake.autocomplete("taste", options, focused="aspect_ratio")
        )
        pro = await fake.wait_for(lambda c: c.route == CALLBACK and c.json["type"] == 8)
        options["model"] = "nano-banana-2"
        await fake.dispatch(
            "INTERACTION_CREATE", fake.autocomplete("taste", options, focused="aspect_ratio")
        )
        fast = await fake.wait_for(
            lambda c: c.route == CALLBACK and c.json["type"] == 8 and c.seq != pro.seq
        )
    assert [c["value"] for c in pro.json["data"]["choices"]] == ["1:1"]
    assert [c["value"] for c in fast.json["data"]["choices"]] == ["1:1", "1:4", "1:8"]


async def test_the_progress_bar_moves_along_the_estimate(tmp_path: Path, fake: FakeDiscord) -> None:
    config = SimConfig(time_scale=60.0, estimate_seconds=60.0, seed=2)  # about 1 s real
    async with Simulator(config) as slow, running(tmp_path, slow, fake) as bot:
        bot.bot.notifier.edit_interval = 0.0
        await bot.bind(fake.owner, KEY)
        await fake.dispatch("INTERACTION_CREATE", fake.slash_command("taste", {"brief": "a cat"}))
        await bot.upload()
        await bot.settled()
        assert not bot.bot.notifier._tickers
    card_id = int(fake.calls_to("POST", THREADS)[0].params["message_id"])
    edits = [c for c in fake.calls_to("PATCH", MESSAGE) if c.params["message_id"] == str(card_id)]
    titles = [c.json["embeds"][0]["title"] for c in edits]
    assert any("▰" in t for t in titles), titles
    assert titles[-1] == "🎨 Done"


async def test_a_delivered_event_handed_over_again_without_its_link_posts_no_second_image(
    tmp_path: Path, sim: Simulator, fake: FakeDiscord
) -> None:
    """A crash between Discord's answer and the store write: the image link was never
    stored, the event comes again; the nonce makes Discord answer with the first message."""
    async with running(tmp_path, sim, fake) as bot:
        await bot.bind(fake.owner, KEY)
        await fake.dispatch("INTERACTION_CREATE", fake.slash_command("taste", {"brief": "a cat"}))
        (upload,) = await bot.upload()
        await bot.settled()
        (gen,) = await bot.generations(fake.owner)
        links = await bot.runtime.store.messages_for_generation(gen.id)
        recorded: list[MessageLink] = []

        async def record(link: MessageLink) -> None:
            recorded.append(link)

        without_image = tuple(link for link in links if link.kind != "image")
        event = Delivered(gen, upload.files[0].data, "again.png", 1, 1, None, None)
        made = await bot.bot.notifier.notify(event, Notice(without_image, record))
    (image,) = [link for link in links if link.kind == "image"]
    assert (
        [link.message_id for link in made]
        == [image.message_id]
        == [link.message_id for link in recorded]
    )
    card_id = int(fake.calls_to("POST", THREADS)[0].params["message_id"])
    assert len([m for m in fake.channel_messages(card_id) if m.get("attachments")]) == 1


async def test_a_refine_form_opened_before_a_restart_is_submitted_after_it_once(
    tmp_path: Path, sim: Simulator, fake: FakeDiscord
) -> None:
    async with running(tmp_path, sim, fake) as bot:
        await bot.bind(fake.owner, KEY)
        await fake.dispatch("INTERACTION_CREATE", fake.slash_command("taste", {"brief": "a cat"}))
        await bot.upload()
        await bot.settled()
        (first,) = await bot.generations(fake.owner)
        card_id = int(fake.calls_to("POST", THREADS)[0].params["message_id"])
        image = next(m for m in fake.channel_messages(card_id) if m.get("attachments"))
        press = fake.button_press(int(image["id"]), f"tmbot:refine:{first.id}")
        await fake.dispatch("INTERACTION_CREATE", press)
        modal = await fake.wait_for(lambda c: c.route == CALLBACK and c.json["type"] == 9)
    async with running(tmp_path, sim, fake) as bot:
        submit = fake.modal_submit(modal.json["data"]["custom_id"], {"words": "at night"})
        await fake.dispatch("INTERACTION_CREATE", submit)
        await bot.upload(2)
        await bot.settled()
        refined, _ = await bot.generations(fake.owner)
    assert refined.spec.brief == "a cat at night" and refined.regenerated_from == first.id
    answers = [
        c for c in fake.calls_to("POST", CALLBACK) if c.params["interaction_id"] == submit["id"]
    ]
    assert len(answers) == 1 and all(c.status < 400 for c in fake.calls)


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("team link", "/taste-team link"),
        ("TEAM unlink", "/taste-team unlink"),
        ("link", "/taste-link"),
        ("unlink", "/taste-unlink"),
    ],
)
async def test_a_link_command_in_a_public_message_points_to_its_private_slash_command(
    tmp_path: Path, sim: Simulator, fake: FakeDiscord, text: str, command: str
) -> None:
    async with running(tmp_path, sim, fake):
        message = fake.message(f"{fake.bot.mention} {text}", author=fake.owner)
        await fake.dispatch("MESSAGE_CREATE", message)
        answer = await fake.wait_for(lambda c: c.method == "POST" and c.route == MESSAGES)
    assert answer.json["content"] == f"That answer is private: use `{command}`."
    # no code was made, so none could have been shown in the channel
    assert not any("link code" in repr(c.json) for c in fake.calls)
