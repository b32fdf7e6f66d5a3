"""A local fake of Slack for tests that run the real slack_sdk / slack_bolt against it.

See README.md next to the `fakes` package for how to use it.
"""

from . import payloads
from .calls import RESPONSE_URL, SOCKET_ACK, UPLOAD, Call, Fault
from .model import (
    APP_ID,
    BOT_ID,
    BOT_USER_ID,
    GENERAL,
    TEAM_ID,
    Channel,
    File,
    Message,
    SlackError,
    User,
    Workspace,
)
from .payloads import AppAnswer, SignedRequest, post_signed, signature
from .server import FakeSlack

__all__ = [
    "APP_ID",
    "BOT_ID",
    "BOT_USER_ID",
    "GENERAL",
    "RESPONSE_URL",
    "SOCKET_ACK",
    "TEAM_ID",
    "UPLOAD",
    "AppAnswer",
    "Call",
    "Channel",
    "FakeSlack",
    "Fault",
    "File",
    "Message",
    "SignedRequest",
    "SlackError",
    "User",
    "Workspace",
    "payloads",
    "post_signed",
    "signature",
]
