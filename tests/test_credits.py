"""Credits: prices checked before anything is sent, 402s with their numbers, what `credits`
says, budget periods, and the ledger derived from generation rows."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from storage.sqlite import SqliteStore
from tests.test_engine_harness import console_chat
from tmbot.domain import Actor, GenerationSpec, Place, ProviderName
from tmbot.funds import period_start
from tmbot.records import (
    Budget,
    BudgetPeriod,
    Generation,
    GenStatus,
    KeyRef,
    KeyScope,
    Spend,
)

LOW = "tm_test_lowLLLLLLLLL0004"
BROKE = "tm_test_brokeBBBBBBB0005"
ALICE = "tm_test_aliceAAAAAAA0001"
TEAM = "tm_test_teamTTTTTTTT0002"
VTRIX = "vx_aliceVVVVVVVVVVVVVVVV0006"
DELIVERED = re.compile(r"delivered: \S+ \((\d+)×(\d+)(?:, ([^)]*))?\)")


async def test_the_last_known_balance_refuses_the_third_pro_image_before_the_api(
    tmp_path: Path,
) -> None:
    """A `low` key has 25 credits: two pro images (10 each) go through, and the third is
    refused by the balance the provider last reported, without a create call."""
    async with console_chat(tmp_path) as chat:
        await chat.say(f"key {LOW}")
        first = await chat.ask("a poster for a jazz night")
        await chat.settle()
        assert DELIVERED.search(chat.final(first))[3] == "10 credits, 15 left"  # type: ignore[index]
        second = await chat.ask("a poster for a jazz night, in blue")
        # the second is reserved (or already charged): 5 left for the third, which costs 10
        refused = await chat.say("a poster for a jazz night, in red")
        assert refused.startswith(
            "error: This image costs 10 credits but your key …0004 has 5 left"
        )
        assert refused.endswith("; top it up, or bind another key with `/taste key`.")
        await chat.settle()
        assert DELIVERED.search(chat.final(second))[3] == "10 credits, 5 left"  # type: ignore[index]
        stats = chat.stats(LOW)
        assert stats.creates == 2 and stats.tasks_created == 2
        # nothing in the price table fits in 5, so no cheaper image is suggested; once the
        # images have settled nothing is reserved, so the reported balance is the measure
        again = await chat.say("a small sketch --fast --res 4k")
        assert "costs 10 credits but your key …0004 has 5 left as The Taste Machine last" in again
        assert "ask for" not in again
        assert chat.stats(LOW).requests == stats.requests
        assert (await chat.say("credits")).startswith(
            "You're on your personal key for The Taste Machine (…0004): 5 credits left as of "
        )


async def test_the_team_keys_balance_sends_members_to_an_admin(tmp_path: Path) -> None:
    async with console_chat(tmp_path) as chat:
        await chat.say(f"team key {LOW}")
        await chat.ask("@bob a poster")
        await chat.settle()
        await chat.ask("@carol a poster")
        refused = await chat.say("@dave a poster --fast --res 2k")
        assert refused.startswith("error: This image costs 9 credits but the team's key …0004 ")
        assert refused.endswith("; ask a workspace admin to top it up.")
        await chat.settle()
        assert chat.stats(LOW).creates == 2


@pytest.mark.parametrize(
    ("team", "advice"),
    [
        (False, "; top it up or bind another with `/taste key`."),
        (
            True,
            "; this is the team's key, so ask a workspace admin to top it up or bind another "
            "with `/taste team key`.",
        ),
    ],
)
async def test_a_402_reports_required_and_available(
    tmp_path: Path, team: bool, advice: str
) -> None:
    """A `broke` key's balance is unknown until the provider answers: the create is sent,
    answered 402, and the failure carries the provider's numbers."""
    async with console_chat(tmp_path) as chat:
        await chat.say(f"team key {BROKE}" if team else f"@bob key {BROKE}")
        gen = await chat.ask("@bob a poster --res 4k")
        await chat.settle()
        assert chat.final(gen) == (
            f"[{gen}] failed: The Taste Machine says this key does not have enough credits "
            f"(402): the image needs 15 and 0 are left{advice}"
        )
        assert chat.stats(BROKE).requests == 1  # not retried
        history = await chat.say("@bob history")
        assert "nothing charged" in history


async def test_credits_shows_key_balance_use_and_budget(tmp_path: Path) -> None:
    async with console_chat(tmp_path) as chat:
        assert await chat.say("@bob credits") == (
            "error: You have no key for The Taste Machine yet, and neither does your team: "
            "bind yours with `/taste key`."
        )
        await chat.say(f"key {ALICE}")
        await chat.say(f"team key {TEAM}")
        await chat.say("team budget @bob 50/day")
        assert await chat.say("credits") == (
            "You're on your personal key for The Taste Machine (…0001): no balance reported "
            "yet (it shows after the next image); your use of it: 0 credits today, 0 this "
            "month."
        )
        await chat.ask("a poster --fast --res 4k")  # 10
        await chat.ask("@bob a poster --fast --res 2k")  # 9
        await chat.ask("@carol a poster --fast --res 1k")  # 8
        await chat.settle()
        mine = await chat.say("credits")
        assert re.fullmatch(
            r"You're on your personal key for The Taste Machine \(…0001\): 990 credits left as "
            r"of (just now|\d+ s ago); your use of it: 10 credits today, 10 this month\.",
            mine,
        ), mine
        bob = await chat.say("@bob credits")
        assert re.fullmatch(
            r"You're on the team's key for The Taste Machine \(…0002\): 9\d\d credits left as "
            r"of [^;]+; your use of it: 9 credits today, 9 this month; your team budget is "
            r"50/day, with 41 left today\.",
            bob,
        ), bob
        carol = await chat.say("@carol credits")
        assert carol.endswith(
            "your use of it: 8 credits today, 8 this month; no budget applies to you, so your "
            "use of the team key is not capped."
        )
        await chat.say("team budget default 20/month")
        assert (await chat.say("@carol credits")).endswith(
            "your team budget is 20/month (the team default), with 12 left this month."
        )
        # a Vtrix key is listed too; Vtrix reports no balance, so images are counted
        await chat.say(f"key --provider vtrix {VTRIX}")
        await chat.ask("a banner --provider vtrix")
        await chat.settle()
        lines = (await chat.say("credits")).splitlines()
        assert lines[0].startswith("You're on your personal key for The Taste Machine")
        assert re.fullmatch(
            r"You're on your personal key for Vtrix \(Nano Banana 2\) \(…0006\): Vtrix \(Nano "
            r"Banana 2\) reports no balance; your use of it: 1 image today, 1 this month"
            r"( \(reported cost 0\.04 this month\))?\.",
            lines[1],
        ), lines[1]
        # with Vtrix as the default provider, its line comes first
        await chat.say("settings --provider vtrix")
        assert (await chat.say("credits")).startswith("You're on your personal key for Vtrix")


async def test_budget_periods_start_at_midnight_and_on_the_first_utc(tmp_path: Path) -> None:
    clock = [datetime(2026, 3, 31, 23, 59, 0, tzinfo=UTC).timestamp()]
    async with console_chat(tmp_path, now=lambda: clock[0]) as chat:
        await chat.say(f"team key {TEAM}")
        await chat.say("team budget @bob 10/day")
        await chat.ask("@bob a poster")
        assert "you have 0 of your 10/day" in await chat.say("@bob a poster")
        clock[0] += 120  # 00:01 on April 1st: a new day and a new month
        await chat.ask("@bob a poster")
        await chat.say("team budget @bob 25/month")
        await chat.ask("@bob a poster")  # 20 of 25 this month (March does not count)
        assert "you have 5 of your 25/month" in await chat.say("@bob a poster")
        clock[0] += 86400  # April 2nd: the month goes on
        assert "you have 5 of your 25/month" in await chat.say("@bob a poster")
        await chat.settle()
        assert chat.stats(TEAM).tasks_created == 3


def test_period_start() -> None:
    now = datetime(2026, 2, 17, 13, 45, 12, tzinfo=UTC).timestamp()
    assert period_start(BudgetPeriod.DAY, now) == datetime(2026, 2, 17, tzinfo=UTC).timestamp()
    assert period_start(BudgetPeriod.MONTH, now) == datetime(2026, 2, 1, tzinfo=UTC).timestamp()


async def test_concurrent_requests_cannot_overspend_a_budget(tmp_path: Path) -> None:
    async with console_chat(tmp_path) as chat:
        await chat.say(f"team key {TEAM}")
        await chat.say("team budget @bob 30/day")
        lines = [f"@bob poster number {n}" for n in range(8)]
        await asyncio.gather(*(chat.console.handle_line(line) for line in lines))
        await chat.settle()
        printed = chat.printed()
        accepted = re.findall(r"^\[\w+\] accepted: ", printed, re.M)
        refused = re.findall(
            r"^error: This image costs 10 credits but you have 0 of your ", printed, re.M
        )
        assert (len(accepted), len(refused)) == (3, 5), printed
        assert chat.stats(TEAM).tasks_created == 3


# --- the ledger, straight against the store -------------------------------------------


def _gen(gen_id: str, **changes: object) -> Generation:
    base = Generation(
        id=gen_id,
        actor=Actor(platform="test", tenant="test:T1", user_id="bob"),
        place=Place(platform="test", channel="C1"),
        spec=GenerationSpec(
            provider=ProviderName.TASTEMACHINE,
            brief="a poster",
            model="nano-banana-pro",
            aspect_ratio="1:1",
            resolution="2k",
        ),
        key=KeyRef(KeyScope.TEAM, "T1", "", ProviderName.TASTEMACHINE),
        status=GenStatus.DELIVERED,
        created_at=1000.0,
        updated_at=1000.0,
        cost=10.0,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


async def test_spend_is_reserved_settled_and_released_from_generation_rows(
    tmp_path: Path,
) -> None:
    team = KeyRef(KeyScope.TEAM, "T1", "", ProviderName.TASTEMACHINE)
    rows = [
        _gen("settled", credits_consumed=12.0),  # the provider's figure wins over the price
        _gen("priced"),  # delivered, no figure reported: the price
        _gen("reserved", status=GenStatus.ACCEPTED),
        _gen("sending", status=GenStatus.SUBMITTING),
        _gen("running", status=GenStatus.SUBMITTED),
        _gen("released", status=GenStatus.FAILED),  # failed, nothing charged
        _gen("charged", status=GenStatus.FAILED, credits_consumed=10.0),  # link expired
        _gen("deleted", deleted_at=1500.0),  # deleted images were still paid for
        _gen("old", created_at=10.0),  # before `since`
        _gen("personal", key=KeyRef(KeyScope.USER, "T1", "bob", ProviderName.TASTEMACHINE)),
        _gen("other", actor=Actor(platform="test", tenant="test:T1", user_id="carol")),
        _gen("elsewhere", key=KeyRef(KeyScope.TEAM, "T2", "", ProviderName.TASTEMACHINE)),
    ]
    async with await SqliteStore.open(tmp_path / "ledger.db") as store:
        for row in rows:
            await store.insert_generation(row)
        spend = await store.spend(
            "T1", "bob", scope=KeyScope.TEAM, provider=ProviderName.TASTEMACHINE, since=500.0
        )
        assert spend == Spend(credits=12 + 10 + 10 + 10 + 10 + 10 + 10, images=7)
        by_member = await store.spend_by_member(
            "T1", scope=KeyScope.TEAM, provider=ProviderName.TASTEMACHINE, since=500.0
        )
        assert by_member == {"bob": spend, "carol": Spend(credits=10.0, images=1)}
        assert await store.spend(
            "T1", "bob", scope=KeyScope.USER, provider=ProviderName.TASTEMACHINE, since=0.0
        ) == Spend(credits=10.0, images=1)
        assert (
            await store.spend(
                "T1", "bob", scope=KeyScope.TEAM, provider=ProviderName.VTRIX, since=0.0
            )
            == Spend()
        )
        # only rows whose create call has not been answered are not in the balance yet
        assert await store.pending_cost(team) == 20.0


async def test_budgets_and_team_settings_round_trip(tmp_path: Path) -> None:
    async with await SqliteStore.open(tmp_path / "team.db", now=lambda: 42.0) as store:
        assert await store.list_budgets("T1") == []
        await store.put_budget(Budget("T1", "bob", 50, BudgetPeriod.DAY))
        await store.put_budget(Budget("T1", "", 200, BudgetPeriod.MONTH, updated_at=7.0))
        await store.put_budget(Budget("T2", "bob", 5, BudgetPeriod.DAY))
        await store.put_budget(Budget("T1", "bob", 60, BudgetPeriod.MONTH))  # replaces
        assert await store.get_budget("T1", "bob") == Budget(
            "T1", "bob", 60, BudgetPeriod.MONTH, updated_at=42.0
        )
        assert [b.member for b in await store.list_budgets("T1")] == ["", "bob"]
        assert (await store.list_budgets("T1"))[0].is_default
        assert await store.delete_budget("T1", "bob") is True
        assert await store.delete_budget("T1", "bob") is False
        assert await store.get_budget("T1", "bob") is None
        assert await store.get_budget("T2", "bob") is not None
        assert await store.request_channels("T1") == []
        assert await store.set_request_channel("T1", "C1", enabled=True, by="ann", at=1.0)
        assert not await store.set_request_channel("T1", "C1", enabled=True, by="bob", at=2.0)
        await store.set_request_channel("T1", "C0", enabled=True, by="ann", at=3.0)
        assert await store.request_channels("T1") == ["C1", "C0"]
        assert await store.is_request_channel("T1", "C0")
        assert not await store.is_request_channel("T2", "C0")
        assert await store.set_request_channel("T1", "C1", enabled=False, by="ann", at=4.0)
        assert await store.request_channels("T1") == ["C0"]
