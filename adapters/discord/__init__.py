"""The Discord adapter: discord.py client, app commands, buttons, modals, reactions, and the
notifier that renders core events as a request card (embed) with a thread holding the image.

Modules: :mod:`.render` (embeds, limits), :mod:`.notifier` (events -> Discord messages),
:mod:`.views` (persistent buttons, modals), :mod:`.bot` (client, intents, commands, messages,
reactions), :mod:`.main` (composition, ``tmbot discord``, the invite URL).
"""

PLATFORM = "discord"
