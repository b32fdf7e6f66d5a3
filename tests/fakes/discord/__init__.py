"""A local fake of Discord (REST + gateway) for driving the real discord.py client in tests."""

from .gateway import GatewaySession
from .model import Call, FakeChannel, FakeGuild, FakeMember, FakeRole, FakeUser, UploadedFile
from .server import ApiError, FakeDiscord

__all__ = [
    "ApiError",
    "Call",
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeMember",
    "FakeRole",
    "FakeUser",
    "GatewaySession",
    "UploadedFile",
]
