"""What both provider clients share: one :class:`ProviderHttp`, the create and poll
templates, downloads. Each client adds its paths and its answer parsers."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import ClassVar

import httpx

from tmbot.domain import ApiKey, GenerationSpec, ProviderName, Submission, TaskState
from tmbot.errors import BadRequest
from tmbot.providers.http import DEFAULT_TIMEOUT, ProviderHttp, resolve_base_url
from tmbot.providers.wire import reading

log = logging.getLogger(__name__)


class HttpImageProvider:
    """An image API over HTTP. One instance serves every key; the key is passed per call."""

    name: ProviderName
    label: ClassVar[str]  # how messages name the provider
    env_var: ClassVar[str]  # the variable that overrides the base URL
    default_base_url: ClassVar[str]
    create_path: ClassVar[str]

    def __init__(
        self,
        base_url: str | None = None,
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._http = ProviderHttp(
            label=self.label,
            base_url=resolve_base_url(
                base_url, env_var=self.env_var, default=self.default_base_url
            ),
            client=client,
            timeout=timeout,
        )

    @property
    def base_url(self) -> str:
        return self._http.base_url

    # --- what each API does its own way ----------------------------------------------

    def create_body(self, spec: GenerationSpec) -> Mapping[str, object]:
        raise NotImplementedError

    def poll_request(self, task_id: str) -> tuple[str, Mapping[str, str] | None]:
        """The path and query parameters that ask about ``task_id``."""
        raise NotImplementedError

    def read_submission(self, data: Mapping[str, object], key: ApiKey) -> Submission:
        raise NotImplementedError

    def read_task(self, data: Mapping[str, object], task_id: str, key: ApiKey) -> TaskState:
        raise NotImplementedError

    # --- the shared templates --------------------------------------------------------

    async def submit(self, key: ApiKey, spec: GenerationSpec) -> Submission:
        body = self.create_body(spec)
        data = await self._http.call("POST", self.create_path, key=key, json_body=body)
        with reading(self.label, "a create answer"):
            submission = self.read_submission(data, key)
        log.debug("%s submitted task=%s", self.name, submission.task_id)
        return submission

    async def poll(self, key: ApiKey, task_id: str) -> TaskState:
        if not task_id or not task_id.strip():
            raise BadRequest(f"There is no {self.label} task id to ask about.")
        path, params = self.poll_request(task_id)
        data = await self._http.call("GET", path, key=key, params=params, task_id=task_id)
        with reading(self.label, "a task state"):
            return self.read_task(data, task_id, key)

    async def download(self, url: str) -> bytes:
        return await self._http.download(url)

    async def aclose(self) -> None:
        await self._http.aclose()
