"""The Slack front end: slack-bolt's AsyncApp over HTTP or Socket Mode.

Modules: :mod:`.blocks` (escaping, the request card, image comments), :mod:`.notifier` (core
events -> Slack messages), :mod:`.handlers` (slash command, mentions, request channels,
reactions, buttons, the key modal), :mod:`.app` (bolt wiring, the Web API client),
:mod:`.main` (``tmbot slack``).
"""

from adapters.slack.blocks import escape
from adapters.slack.notifier import PLATFORM, SlackNotifier

__all__ = ["PLATFORM", "SlackNotifier", "escape"]
