"""The real bot with the real discord.py client against the local fake Discord and the
simulator: a SQLite file in tmp_path, the real vault, the Discord notifier."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.discord import PLATFORM
from adapters.discord.bot import TasteBot
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.model import Call, FakeUser
from tests.harness import FAST_DISPATCH, _vault
from tmbot import Actor, Generation, tenant_of
from tmbot.config import Config
from tmbot.runtime import Runtime, open_runtime
from tmbot.simulator import Simulator

MESSAGES = "/channels/{channel_id}/messages"
MESSAGE = "/channels/{channel_id}/messages/{message_id}"
THREADS = "/channels/{channel_id}/messages/{message_id}/threads"
CALLBACK = "/interactions/{interaction_id}/{interaction_token}/callback"
FOLLOWUP = "/webhooks/{webhook_id}/{webhook_token}"
TIMEOUT = 30.0


@dataclass
class Running:
    bot: TasteBot
    runtime: Runtime
    fake: FakeDiscord

    @property
    def tenant(self) -> str:
        assert self.fake.guild is not None
        return tenant_of(PLATFORM, str(self.fake.guild.id))

    def actor(self, user: FakeUser, *, admin: bool = False) -> Actor:
        return Actor(PLATFORM, self.tenant, str(user.id), is_admin=admin)

    async def bind(self, user: FakeUser, key: str) -> None:
        assert self.fake.guild is not None
        await self.runtime.engine.bind_key(self.actor(user), _tm(), _api_key(key))

    async def generations(self, user: FakeUser) -> list[Generation]:
        return await self.runtime.store.recent_generations(self.tenant, str(user.id))

    async def settled(self) -> None:
        async with asyncio.timeout(TIMEOUT):
            await self.runtime.settled()

    async def upload(self, count: int = 1) -> list[Call]:
        """Wait until ``count`` images have been uploaded; the upload calls."""

        def uploads() -> list[Call]:
            return [c for c in self.fake.calls_to("POST", MESSAGES) if c.files and c.status == 200]

        await self.fake.wait_for(lambda _c: len(uploads()) >= count, timeout=TIMEOUT)
        return uploads()


def _tm() -> Any:
    from tmbot import ProviderName

    return ProviderName.TASTEMACHINE


def _api_key(key: str) -> Any:
    from tmbot import ApiKey

    return ApiKey(key)


@asynccontextmanager
async def running(
    tmp_path: Path,
    sim: Simulator,
    fake: FakeDiscord,
    *,
    message_content: bool = False,
) -> AsyncIterator[Running]:
    assert fake.guild is not None
    bot = TasteBot(
        guild_id=fake.guild.id, message_content=message_content, guild_ready_timeout=0.05
    )
    config = Config(time_scale=sim.config.time_scale, http_timeout=TIMEOUT)
    async with open_runtime(
        config,
        {PLATFORM: bot.notifier},
        database_url=f"sqlite:///{tmp_path / 'bot.db'}",
        tastemachine_url=sim.base_url,
        vtrix_url=sim.base_url,
        vault=_vault(tmp_path),
        dispatch_policy=FAST_DISPATCH,
    ) as runtime:
        bot.use(runtime.engine)
        with fake.patch_discord():
            task: asyncio.Task[None] | None = None
            try:
                await bot.login(fake.token)
                task = asyncio.create_task(bot.connect(reconnect=False))
                async with asyncio.timeout(TIMEOUT):
                    await bot.wait_until_ready()
                yield Running(bot, runtime, fake)
            finally:
                await bot.close()
                if task is not None:
                    await task
