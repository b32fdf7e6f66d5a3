"""Regenerate (who pays, repeated triggers), delete (who may, what happens), history,
settings and Vtrix end to end, through the console front end against the real simulator."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.test_engine_harness import SCALE, console_chat, stored_bytes
from tmbot.domain import Actor
from tmbot.errors import NotFound, NotPermitted
from tmbot.records import GenStatus
from tmbot.replies import DeleteAccepted
from tmbot.simulator import SimConfig

ALICE = "tm_test_aliceAAAAAAA0001"
TEAM = "tm_test_teamTTTTTTTT0002"
CAROL = "tm_test_carolCCCCCCC0003"
VTRIX = "vx_bobVVVVVVVVVVVVVVVVVV0006"
TEAM_VTRIX = "vx_teamVVVVVVVVVVVVVVVV0007"
SIZE = re.compile(r"\((\d+)×(\d+)")


def ratio(line: str) -> float:
    match = SIZE.search(line)
    assert match, line
    return round(int(match[1]) / int(match[2]), 2)


# --- regenerate --------------------------------------------------------------------------


async def test_regenerate_is_paid_by_whoever_asks_and_repeats_count_once(
    tmp_path: Path,
) -> None:
    offset = [0.0]
    async with console_chat(tmp_path, now=lambda: time.time() + offset[0]) as chat:
        await chat.say(f"key {ALICE}")
        await chat.say(f"team key {TEAM}")
        await chat.say("team budget @bob 10/day")
        await chat.say(f"@carol key {CAROL}")
        original = await chat.ask("a poster for a Tokyo coffee shop --ar 3:4")
        await chat.settle()

        # bob has no key: the team key pays, within bob's budget
        again = await chat.ask(f"@bob regenerate {original}")
        assert await chat.say(f"@bob 🔁 {original}") == (
            f"[{again}] accepted: “a poster for a Tokyo coffee shop” (nano-banana-pro, 3:4, 2k, "
            f"taste default), another of {original} (already asked for a moment ago)"
        )  # the repeated trigger gives back the same generation
        await chat.settle()
        assert ratio(chat.final(again)) == 0.75
        assert chat.stats(ALICE).tasks_created == 1  # never the requester's personal key
        assert chat.stats(TEAM).tasks_created == 1

        # a second, later trigger is a new request: over bob's budget, refused before the API
        offset[0] += 11
        refused = await chat.say(f"@bob regenerate {original}")
        assert refused.startswith("error: This image costs 10 credits but you have 0 of your ")
        assert chat.stats(TEAM).creates == 1

        # carol has her own key: it pays
        hers = await chat.ask(f"@carol regenerate {original}")
        await chat.settle()
        assert " delivered: " in chat.final(hers)
        assert chat.stats(CAROL).tasks_created == 1
        assert chat.stats(ALICE).tasks_created == 1
        bobs = await chat.say("@bob history")
        assert f"10 credits on the team key · another of `{original}`" in bobs

        assert await chat.say("regenerate 0000000000") == (
            "error: That result is not one tmbot knows in this workspace."
        )


# --- delete ------------------------------------------------------------------------------


async def test_delete_is_for_the_requester_and_admins(tmp_path: Path) -> None:
    async with console_chat(tmp_path, admins=["carol"]) as chat:
        await chat.say(f"key {ALICE}")
        first = await chat.ask("a poster --fast --res 1k")
        second = await chat.ask("another poster --fast --res 1k")
        await chat.settle()
        assert (chat.out / f"tmbot-{first}.png").exists()

        assert await chat.say(f"@bob delete {first}") == (
            "error: Only the person who asked for that image, or a workspace admin, can delete it."
        )
        assert (chat.out / f"tmbot-{first}.png").exists()
        assert await chat.say(f"delete {first}") == f"Deleted {first}."
        await chat.transcript.wait_for(rf"^\[{first}\] deleted by alice: removed its file$")
        assert not (chat.out / f"tmbot-{first}.png").exists()
        assert await chat.say(f"delete {first}") == f"Deleted {first}."  # harmless again
        assert await chat.say(f"@carol 🗑 {second}") == f"Deleted {second}."
        await chat.transcript.wait_for(rf"^\[{second}\] deleted by carol: removed its file$")
        stored = await chat.store.get_generation(second)
        assert stored is not None and stored.deleted_by == "carol"
        assert stored.status is GenStatus.DELIVERED  # deleted, still paid for
        assert await chat.say("delete 0000000000") == (
            "error: That result is not one tmbot knows in this workspace."
        )
        assert await chat.say(f"regenerate {first}") == (
            "error: That result was deleted, so it cannot be made again; ask anew."
        )
        history = await chat.say("history")
        assert history.count("delivered, deleted") == 2

        # the adapter hears of a deletion as an event after the messages it made
        third = await chat.ask("a third poster --fast --res 1k")
        await chat.settle()
        alice = chat.console.actor("alice")
        bob = chat.console.actor("bob")
        with pytest.raises(NotPermitted):
            await chat.engine.delete(bob, third)
        with pytest.raises(NotFound):
            await chat.engine.delete(Actor("slack", "slack:elsewhere", "alice"), third)
        reply = await chat.engine.delete(alice, third)
        assert reply == DeleteAccepted(reply.generation, cancelled=False)
        assert reply.generation.deleted_by == "alice"
        await chat.transcript.wait_for(rf"^\[{third}\] deleted by alice: removed its file$")
        lines = chat.transcript.about(third)
        assert [line.split(":")[0] for line in lines[-2:]] == [
            f"[{third}] delivered",
            f"[{third}] deleted by alice",
        ]


async def test_delete_cancels_a_queued_image_but_not_one_at_the_provider(
    tmp_path: Path,
) -> None:
    # real durations (a pro 4k image: 48 provider seconds, about 0.5 s here), so the first
    # ten are surely still running while the eleventh waits
    config = SimConfig(time_scale=SCALE)
    async with console_chat(tmp_path, sim_config=config) as chat:
        await chat.say(f"key {ALICE}")
        running = [await chat.ask(f"big poster {n} --res 4k") for n in range(10)]
        queued = await chat.ask("one poster too many --fast --res 1k")
        # the key's ten slots are taken: the eleventh waits here and can still be called off
        assert await chat.say(f"delete {queued}") == (
            f"Cancelled {queued} before it was sent; nothing was charged."
        )
        await chat.transcript.wait_for(rf"^\[{running[0]}\] started ")
        assert await chat.say(f"delete {running[0]}") == (
            "error: That image is already being made and cannot be stopped; delete it once it "
            "has been posted."
        )
        await chat.settle()
        assert chat.final(queued) == (
            f"[{queued}] failed: Cancelled by alice before it was sent, so nothing was charged."
        )
        assert all(" delivered: " in chat.final(g) for g in running)
        assert chat.stats(ALICE).tasks_created == 10
        assert "failed, deleted" in await chat.say("history")
        assert await chat.say(f"delete {running[0]}") == f"Deleted {running[0]}."
        await chat.transcript.wait_for(rf"^\[{running[0]}\] deleted by alice: removed its file$")


# --- history and settings ----------------------------------------------------------------


async def test_history_lists_the_last_ten_with_status_parameters_and_place(
    tmp_path: Path,
) -> None:
    async with console_chat(tmp_path) as chat:
        await chat.say(f"key {ALICE}")
        assert await chat.say("history") == "You have no images yet."
        ids = [await chat.ask(f"poster number {n} --fast --res 1k") for n in range(10)]
        last = await chat.ask(
            "a lighthouse at dawn --ar 3:4 --fast --res 2k --taste realistic-photo"
        )
        await chat.settle()
        history = (await chat.say("history")).splitlines()
        assert await chat.say("@bob history") == "You have no images yet."
    assert history[0] == "Your last images:"
    assert len(history) == 11  # the newest ten
    assert f"`{ids[0]}`" not in "\n".join(history)
    assert re.fullmatch(
        rf"`{last}` (just now|\d+ s ago) · delivered · “a lighthouse at dawn” \(nano-banana-2, "
        r"3:4, 2k, taste realistic-photo\) · in console · 9 credits on your key",
        history[1],
    ), history[1]
    assert all(" · delivered · " in line and " · in console · " in line for line in history[1:])


async def test_settings_are_defaults_and_flags_win(tmp_path: Path) -> None:
    async with console_chat(tmp_path) as chat:
        await chat.say(f"key {ALICE}")
        assert await chat.say("settings") == (
            "Your defaults: none set (the provider's defaults apply)."
        )
        assert await chat.say("settings --ar 3:4 --fast") == (
            "Saved. Your defaults: model nano-banana-2, aspect ratio 3:4."
        )
        assert await chat.say("settings --ar 1:8") == (
            "Saved. Your defaults: model nano-banana-2, aspect ratio 1:8."
        )
        saved = await chat.ask("a tall banner")
        flagged = await chat.ask("a wide banner --ar 16:9 --pro")
        assert await chat.say("settings reset") == "Your defaults are cleared."
        plain = await chat.ask("a square")
        await chat.settle()
        assert [ratio(chat.final(g)) for g in (saved, flagged, plain)] == [0.12, 1.78, 1.0]
        lines = chat.printed()
        assert "“a tall banner” (nano-banana-2, 1:8, 2k, taste default)" in lines
        assert "“a wide banner” (nano-banana-pro, 16:9, 2k, taste default)" in lines
        assert "“a square” (nano-banana-pro, 1:1, 2k, taste default)" in lines


# --- Vtrix -------------------------------------------------------------------------------


async def test_vtrix_end_to_end(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # everything, and no redacting filter in the way
    async with console_chat(tmp_path) as chat:
        assert await chat.say(f"@bob key --provider vtrix {VTRIX}") == (
            "Saved your key for Vtrix (Nano Banana 2) (…0006), encrypted."
        )
        assert await chat.say("@bob a poster") == (
            "error: You have no key for The Taste Machine yet, and neither does your team: "
            "bind yours with `/taste key`."
        )
        wide = await chat.ask("@bob a wide banner --provider vtrix --ar 16:9 --res 2k")
        assert await chat.say("@bob settings --provider vtrix") == (
            "Saved. Your defaults: provider vtrix."
        )
        tall = await chat.ask("@bob a tall banner --ar 1:4")  # Vtrix from the settings
        await chat.settle()
        assert ratio(chat.final(wide)) == 1.78 and ratio(chat.final(tall)) == 0.25
        stats = chat.stats(VTRIX)
        assert stats.tasks_created == 2 and stats.tasks_completed == 2
        with Image.open(chat.out / f"tmbot-{wide}.png") as img:
            assert img.format == "PNG" and img.size[0] > img.size[1]
        assert "via Vtrix (Nano Banana 2)" in chat.printed()
        assert chat.sim.stats().totals.tasks_created == 2  # nothing went to the Taste Machine

        # on the team's Vtrix key images are counted; budgets (credits) cannot cap them
        await chat.say(f"team key --provider vtrix {TEAM_VTRIX}")
        await chat.say("team budget @dave 0/day")
        daves = await chat.ask("@dave a banner --provider vtrix")
        await chat.settle()
        assert " delivered: " in chat.final(daves)
        credits = await chat.say("@dave credits")
        assert credits.startswith("You're on the team's key for Vtrix (Nano Banana 2) (…0007)")
        assert "1 image today, 1 this month" in credits
        assert credits.endswith("publishes no prices, so team budgets do not cap it.")
    leak = stored_bytes(chat.db)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "INSERT INTO key_bindings" in logged  # captured, down to every SQL statement
    for key in (VTRIX, TEAM_VTRIX):
        assert key.encode() not in leak and key not in chat.printed() and key not in logged


@pytest.mark.parametrize(
    ("key", "ending"),
    [
        (
            "vx_brokeBBBBBBBBBBBBBBBB0008",
            "does not have enough credits (403); top it up or bind another with "
            "`/taste key --provider vtrix`.",
        ),
        ("vx_nopermNNNNNNNNNNNNNNN0009", "bind a new one with `/taste key --provider vtrix`"),
    ],
)
async def test_vtrix_key_problems_name_the_provider_flag(
    tmp_path: Path, key: str, ending: str
) -> None:
    async with console_chat(tmp_path) as chat:
        await chat.say(f"key --provider vtrix {key}")
        gen = await chat.ask("a banner --provider vtrix")
        await chat.settle()
        assert ending in chat.final(gen)
        assert chat.stats(key).requests == 1
