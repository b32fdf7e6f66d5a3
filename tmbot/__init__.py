"""tmbot: The Taste Machine (and Vtrix Nano Banana 2) image generation for chat teams.

The package is the platform-neutral core. It never imports a chat SDK or a database
driver; adapters/ and storage/ plug into the Protocols in :mod:`tmbot.ports`.
"""

__version__ = "0.1.0"
