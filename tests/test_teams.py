"""Team keys, budgets, channel setting and admin rights, through the console front end against
the real simulator (in-process, plus one scenario with `tmbot sim` and `tmbot console` as
processes)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.procs import bot_env, run_console, sim_process
from tests.test_engine_harness import console_chat, stored_bytes
from tmbot.simulator import key_id

TEAM = "tm_test_teamTTTTTTTT0001"
BOB = "tm_test_bobBBBBBBBBBB0002"
CAROL = "tm_test_carolCCCCCCCC0003"
ADMIN_ONLY = "error: Only workspace admins can see or change the team's key"


async def test_members_use_the_team_key_within_their_budget(tmp_path: Path) -> None:
    async with console_chat(tmp_path) as chat:
        assert await chat.say(f"team key {TEAM}") == (
            "Saved the team's key for The Taste Machine (…0001), encrypted."
        )
        assert await chat.say("team budget @bob 20/day") == (
            "Saved: bob may use up to 20 credits a day of the team's key (it renews at 00:00 UTC)."
        )
        first = await chat.ask("@bob a poster for a jazz night")
        second = await chat.ask("@bob a poster for a jazz night, in blue")
        await chat.settle()
        assert all(" delivered: " in chat.final(g) for g in (first, second))
        before = chat.stats(TEAM)
        refused = await chat.say("@bob a third poster for the jazz night")
        assert refused == (
            "error: This image costs 10 credits but you have 0 of your 20/day team budget "
            "left; it renews at 00:00 UTC, or ask a workspace admin to raise it, or bind your "
            "own key with `/taste key`."
        )
        after = chat.stats(TEAM)
        # refused before any API call: not one request more for the team key
        assert after.requests == before.requests
        assert after.tasks_created == 2

        # a budget in reach of a cheaper model says which one fits
        assert (await chat.say("team budget @bob 28/day")).startswith("Saved: bob may use")
        cheaper = await chat.say("@bob a fourth poster for the jazz night")
        assert "you have 8 of your 28/day team budget left" in cheaper
        assert "or ask for `--fast --res 1k` (8 credits)" in cheaper
        fast = await chat.ask("@bob a fourth poster for the jazz night --fast --res 1k")
        await chat.settle()
        assert " delivered: " in chat.final(fast)
        assert chat.stats(TEAM).tasks_created == 3


async def test_the_default_budget_and_no_budget_at_all(tmp_path: Path) -> None:
    async with console_chat(tmp_path) as chat:
        await chat.say(f"team key {TEAM}")
        # no budget at all: the team key is not capped
        for n in range(3):
            await chat.ask(f"@dave poster number {n} --fast --res 1k")
        assert (await chat.say("team budget default 15/month")).startswith(
            "Saved: members without their own budget may use up to 15 credits a month"
        )
        # dave has used 24 this month already: over the new default
        refused = await chat.say("@dave one more poster --fast --res 1k")
        assert "costs 8 credits but you have 0 of your 15/month team budget (the team " in (refused)
        assert "renews on the 1st at 00:00 UTC" in refused
        carol = await chat.ask("@carol a lighthouse")  # 10 of the default 15
        refused = await chat.say("@carol another lighthouse")
        assert "costs 10 credits but you have 5 of your 15/month team budget (the team " in (
            refused
        )
        # an own budget replaces the default; removing it falls back on the default
        assert (await chat.say("team budget @carol 30/month")).startswith("Saved: carol")
        again = await chat.ask("@carol another lighthouse")
        assert await chat.say("team budget @carol off") == (
            "Removed carol's budget; the default budget (15/month) applies to them now."
        )
        assert "you have 0 of your 15/month" in await chat.say("@carol a third lighthouse")
        assert await chat.say("team budget @carol off") == (
            "carol had no budget of their own; nothing changed."
        )
        assert await chat.say("team budget default off") == (
            "Removed the default budget; members without their own budget now use the team "
            "key without a cap."
        )
        uncapped = await chat.ask("@carol a third lighthouse --fast --res 1k")
        await chat.settle()
        for gen in (carol, again, uncapped):
            assert " delivered: " in chat.final(gen)
        assert chat.stats(TEAM).tasks_created == 6


async def test_a_personal_key_beats_the_team_key(tmp_path: Path) -> None:
    async with console_chat(tmp_path) as chat:
        await chat.say(f"team key {TEAM}")
        await chat.say("team budget @bob 0/day")  # bob may not use the team key at all
        assert "you have 0 of your 0/day team budget left" in await chat.say("@bob a poster")
        assert await chat.say(f"@bob key {BOB}") == (
            "Saved your key for The Taste Machine (…0002), encrypted."
        )
        gen = await chat.ask("@bob a poster")
        await chat.settle()
        assert " delivered: " in chat.final(gen)
        assert chat.stats(BOB).tasks_created == 1
        assert chat.stats(TEAM).requests == 0
        assert await chat.say("@bob logout") == "Removed your key for The Taste Machine."
        assert "0 of your 0/day team budget" in await chat.say("@bob a poster")
        assert chat.stats(TEAM).requests == 0


NON_ADMIN_LINES = [
    "team",
    "team show",
    "team key",
    f"team key {TEAM}",
    "team key --provider vtrix",
    "team key --provider vtrix vx_teamVVVVVVVVVVVVVVVV0001",
    "team budget @carol 50/day",
    "team budget default 200/month",
    "team budget @carol off",
    "team budget default off",
    "team channel on",
    "team channel off",
    # malformed team commands are refused too, not explained to non-admins
    "team budget @carol 50",
    "team key not-a-key",
    "team channel maybe",
    "team show everything",
]


async def test_non_admins_are_refused_every_team_command(tmp_path: Path) -> None:
    async with console_chat(tmp_path, admins=["alice"]) as chat:
        for line in NON_ADMIN_LINES:
            assert (await chat.say(f"@bob {line}")).startswith(ADMIN_ONLY), line
        # nothing was stored by any of them
        shown = await chat.say("team show")
        assert "The team has no key bound" in shown
        assert "Request channels: none" in shown
        assert "Budgets: none" in shown
        # and the same commands work for an admin
        assert (await chat.say("team key")).startswith("The console has no private form")
        assert (await chat.say("team channel on")).startswith("This channel is a request channel")
        assert "error" not in await chat.say("team budget @carol 50/day")
        assert chat.sim.stats().totals.requests == 0


async def test_team_show_lists_keys_budgets_channel_and_use(tmp_path: Path) -> None:
    vtrix_team = "vx_teamVVVVVVVVVVVVVVVV0001"
    async with console_chat(tmp_path, admins=["alice", "erin"]) as chat:
        await chat.say(f"team key {TEAM}")
        await chat.say(f"team key --provider vtrix {vtrix_team}")
        await chat.say("team budget default 100/month")
        await chat.say("team budget @bob 25/day")
        assert await chat.say("@erin team channel on") == (
            "This channel is a request channel: every new message here is a brief, and its "
            "image is posted in the message's thread."
        )
        await chat.ask("@bob a jazz poster")  # 10 credits
        await chat.ask("@carol a lighthouse --fast --res 1k")  # 8 credits
        await chat.ask("@carol a banner --provider vtrix --ar 16:9")
        await chat.settle()
        shown = await chat.say("@erin team show")
    lines = shown.splitlines()
    assert re.fullmatch(
        r"Team keys: The Taste Machine …0001 \(\d+ credits left as of [^)]+\); "
        r"Vtrix \(Nano Banana 2\) …0001\.",
        lines[0],
    ), lines[0]
    assert lines[1] == (
        "Request channels: console (`/taste team channel on|off` typed in a channel)."
    )
    assert lines[2] == (
        "Budgets (credits on the team key): default 100/month, bob 25/day; members without "
        "their own budget get the default."
    )
    assert lines[3] == "Use of the team key (today / this month):"
    assert lines[4] == "• bob: 10 / 10 credits; budget 25/day, 15 left"
    assert lines[5] == (
        "• carol: 8 / 8 credits; 1 / 1 image on Vtrix (Nano Banana 2); "
        "default budget 100/month, 92 left"
    )
    assert len(lines) == 6


async def test_request_channels_are_stored_per_channel(tmp_path: Path) -> None:
    async with console_chat(tmp_path) as chat:
        engine, tenant = chat.engine, "console:local"
        assert not await engine.is_request_channel(tenant, "console")
        await chat.say("team channel on")
        assert await engine.is_request_channel(tenant, "console")
        assert not await engine.is_request_channel(tenant, "elsewhere")
        assert not await engine.is_request_channel("slack:T1", "console")  # other tenants
        assert "(it already was)" in await chat.say("team channel on")
        assert await chat.say("team channel off") == (
            "This channel is no longer a request channel: mention tmbot or use `/taste` to "
            "make images here."
        )
        assert not await engine.is_request_channel(tenant, "console")
        assert await chat.say("team channel off") == (
            "This channel was not a request channel; nothing changed."
        )
        assert await chat.store.request_channels(tenant) == []


@pytest.mark.parametrize(
    ("team", "expected"),
    [
        (
            False,
            "failed: The Taste Machine rejected this API key (401); bind a new one with "
            "`/taste key`.",
        ),
        (
            True,
            "failed: The Taste Machine rejected this API key (401); this is the team's key, "
            "so ask a workspace admin to bind a new one with `/taste team key`.",
        ),
    ],
)
async def test_a_revoked_key_tells_its_user_what_to_do(
    tmp_path: Path, team: bool, expected: str
) -> None:
    revoked = "tm_test_revokedRRRR0009"
    async with console_chat(tmp_path) as chat:
        await chat.say(f"team key {revoked}" if team else f"@bob key {revoked}")
        gen = await chat.ask("@bob a poster")
        await chat.settle()
        assert chat.final(gen) == f"[{gen}] {expected}"
        assert chat.stats(revoked).requests == 1  # not retried


async def test_a_revoked_vtrix_key_names_the_provider_flag(tmp_path: Path) -> None:
    revoked = "vx_revokedRRRRRRRRRRRRR0009"
    async with console_chat(tmp_path) as chat:
        await chat.say(f"@bob key --provider vtrix {revoked}")
        gen = await chat.ask("@bob a poster --provider vtrix")
        await chat.settle()
        assert chat.final(gen).endswith("bind a new one with `/taste key --provider vtrix`.")


async def test_teams_and_budgets_with_real_processes(tmp_path: Path) -> None:
    """`tmbot sim` and `tmbot console --admin alice --admin erin` as processes: the team key,
    budgets (own and default) enforced before any API call, refusals for a non-admin,
    `team show` and `credits`; no raw key in the database, its WAL, the key file, the output
    or the logs.
    """
    scale = 60.0
    db, out = tmp_path / "bot.db", tmp_path / "images"
    lines = [
        f"team key {TEAM}",
        f"@carol key {CAROL}",
        "team budget @bob 20/day",
        "team budget default 10/day",
        "@erin team channel on",  # --admin is repeatable
        "@bob a jazz poster",
        "@bob a jazz poster, in blue",
        "@bob a jazz poster, in red",  # over bob's 20/day: refused
        "@dave a lighthouse",
        "@dave another lighthouse",  # over the default 10/day: refused
        "@carol a lighthouse",  # her own key: no budget applies
        "@bob team budget @bob 500/day",  # not an admin
        "@bob credits",
        "team show",
    ]
    async with sim_process("--time-scale", str(scale)) as sim:
        code, stdout, stderr = await run_console(
            bot_env(sim.url, db, scale=scale),
            out,
            lines,
            *("--user", "alice", "--admin", "alice", "--admin", "erin"),
        )
        stats = await sim.stats()
    assert code == 0, stderr
    errors = [line for line in stdout.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: This image costs 10 credits but you have 0 of your 20/day team budget left; "
        "it renews at 00:00 UTC, or ask a workspace admin to raise it, or bind your own key "
        "with `/taste key`.",
        "error: This image costs 10 credits but you have 0 of your 10/day team budget (the "
        "team default) left; it renews at 00:00 UTC, or ask a workspace admin to raise it, or "
        "bind your own key with `/taste key`.",
        "error: Only workspace admins can see or change the team's key, budgets, channel "
        "setting and links; ask one of them.",
    ], stdout
    assert len(re.findall(r"^\[\w+\] delivered: ", stdout, re.M)) == 4, stdout
    assert stats["keys"][key_id(TEAM)]["tasks_created"] == 3
    assert stats["keys"][key_id(TEAM)]["creates"] == 3  # the refused ones never reached it
    assert stats["keys"][key_id(CAROL)]["tasks_created"] == 1
    assert (
        "You're on the team's key for The Taste Machine (…0001): " in stdout
        and "your use of it: 20 credits today, 20 this month; your team budget is 20/day, "
        "with 0 left today."
        in stdout
    ), stdout
    assert "Request channels: console" in stdout
    assert "• bob: 20 / 20 credits; budget 20/day, 0 left" in stdout
    assert "• dave: 10 / 10 credits; default budget 10/day, 0 left" in stdout
    leak = stored_bytes(db)
    for key in (TEAM, CAROL):
        assert key.encode() not in leak
        assert key not in stdout and key not in stderr
    assert "…0001" in stdout  # fingerprints are what people see
