"""tmbot: The Taste Machine (and Vtrix Nano Banana 2) image generation for chat teams.

The package is the platform-neutral core. It never imports a chat SDK or a database driver;
adapters/ and storage/ plug into the Protocols in :mod:`tmbot.ports`. This module is the
core's public face: adapters import what they use from here, and only from here.
"""

from tmbot.capabilities import PROVIDERS
from tmbot.cleantext import clean, printable
from tmbot.domain import Actor, ApiKey, Home, Place, ProviderName, tenant_of
from tmbot.engine import Engine
from tmbot.errors import (
    ConfigError,
    NotFound,
    NotPermitted,
    ParseError,
    TmbotError,
)
from tmbot.events import Accepted, Deleted, Delivered, Event, Failed, Queued, Started
from tmbot.funds import priced
from tmbot.ports import Notice, Notifier
from tmbot.records import Generation, GenStatus, KeyScope, MessageLink
from tmbot.replies import (
    AccountsLinked,
    AccountsUnlinked,
    BudgetRemoved,
    BudgetSaved,
    ChannelSet,
    CreditsView,
    DeleteAccepted,
    GenerationAccepted,
    HelpView,
    HistoryView,
    KeyBound,
    KeyFormRequested,
    LinkCodeIssued,
    LoggedOut,
    Reply,
    SettingsView,
    TeamsLinked,
    TeamsUnlinked,
    TeamView,
)
from tmbot.texts import describe_spec, render

__version__ = "0.1.0"

__all__ = [
    "PROVIDERS",
    "Accepted",
    "AccountsLinked",
    "AccountsUnlinked",
    "Actor",
    "ApiKey",
    "BudgetRemoved",
    "BudgetSaved",
    "ChannelSet",
    "ConfigError",
    "CreditsView",
    "DeleteAccepted",
    "Deleted",
    "Delivered",
    "Engine",
    "Event",
    "Failed",
    "GenStatus",
    "Generation",
    "GenerationAccepted",
    "HelpView",
    "HistoryView",
    "Home",
    "KeyBound",
    "KeyFormRequested",
    "KeyScope",
    "LinkCodeIssued",
    "LoggedOut",
    "MessageLink",
    "NotFound",
    "NotPermitted",
    "Notice",
    "Notifier",
    "ParseError",
    "Place",
    "ProviderName",
    "Queued",
    "Reply",
    "SettingsView",
    "Started",
    "TeamView",
    "TeamsLinked",
    "TeamsUnlinked",
    "TmbotError",
    "clean",
    "describe_spec",
    "priced",
    "printable",
    "render",
    "tenant_of",
]
