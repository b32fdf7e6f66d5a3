"""The seam between the core and an image API."""

from __future__ import annotations

from typing import Protocol

from tmbot.domain import ApiKey, GenerationSpec, ProviderName, Submission, TaskState


class ImageProvider(Protocol):
    """An image API. One instance serves every key; the key is passed per call.

    Every method raises only :class:`tmbot.errors.ProviderError` subclasses (never httpx
    errors), and no error text ever contains the key.
    """

    name: ProviderName

    async def submit(self, key: ApiKey, spec: GenerationSpec) -> Submission: ...

    async def poll(self, key: ApiKey, task_id: str) -> TaskState: ...

    async def download(self, url: str) -> bytes:
        """Fetch a finished image (no auth). Raises DownloadFailed (expired=True for
        403/404/410 answers)."""

    async def aclose(self) -> None: ...
