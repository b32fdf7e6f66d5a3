"""The one exception tree of tmbot.

Every error carries a ``user_message``: one sentence a person in a chat channel can act
on. It never contains a secret (API keys are passed around as :class:`tmbot.domain.ApiKey`,
whose text form is a fingerprint). Adapters turn these into platform text in one place.
"""

from __future__ import annotations


class TmbotError(Exception):
    """Base of every error tmbot raises on purpose."""

    #: True when trying the same thing again later may succeed.
    transient: bool = False

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


# --- input -----------------------------------------------------------------------------


class UserInputError(TmbotError):
    """The user's text cannot be used; nothing was sent anywhere."""


class ParseError(UserInputError):
    """A command or brief did not parse or validate. The message names the problem and the
    valid choices, with a did-you-mean where one fits."""


# --- permissions, budgets, missing things ----------------------------------------------


class NotPermitted(TmbotError):
    """The actor may not do this (e.g. a non-admin running a ``team`` command)."""


class LinkRefused(TmbotError):
    """A ``link`` / ``team link`` that cannot be done (an unknown, expired or used code, one
    from the same platform, tenants that are not one team); nothing was changed."""


class EngineLockLost(TmbotError):
    """The store lost the database's engine lock while the bot ran (another engine may start
    on the same database): the runtime stopped its work, and the process exits with code 1
    so that a supervisor restarts it."""


class NotFound(TmbotError):
    """A thing the user referred to does not exist (a generation, a key binding)."""


class Conflict(TmbotError):
    """The thing changed between reading and writing it (another actor or process won)."""


class IllegalTransition(TmbotError):
    """A generation was asked to make a move the state machine does not allow (a bug)."""


class NoKeyBound(TmbotError):
    """There is no key to pay for this request."""


class KeyUnusable(NoKeyBound):
    """A key is bound but cannot be decrypted with this process's secret (``TMBOT_SECRET_KEY``
    changed): it has to be bound again, by its owner or, for the team's key, by an admin."""


class BudgetExceeded(TmbotError):
    """The request would exceed a budget or the key's last known balance; refused before
    any API call."""

    def __init__(self, user_message: str, *, required: int, available: int) -> None:
        super().__init__(user_message)
        self.required = required
        self.available = available


# --- the provider ----------------------------------------------------------------------


class ProviderError(TmbotError):
    """Something went wrong talking to an image API."""

    def __init__(self, user_message: str, *, status: int | None = None) -> None:
        super().__init__(user_message)
        self.status = status


class KeyRejected(ProviderError):
    """401 (or a permission 403): the key is wrong, revoked or lacks permission. Not retried."""


class InsufficientCredits(ProviderError):
    """402 (or Vtrix's balance 403). Amounts are None when the answer did not carry them."""

    def __init__(
        self,
        user_message: str,
        *,
        status: int | None = None,
        required: int | None = None,
        available: int | None = None,
    ) -> None:
        super().__init__(user_message, status=status)
        self.required = required
        self.available = available


class TaskFailed(ProviderError):
    """The provider ended the task as failed; the message carries its reason."""


class NotResent(ProviderError):
    """A create whose outcome is unknown; failed rather than sent twice."""


class BadRequest(ProviderError):
    """400: the provider refused the body. Not retried."""


class RateLimited(ProviderError):
    """429. ``retry_after`` is in provider seconds when the answer said so."""

    transient = True

    def __init__(
        self, user_message: str, *, status: int | None = 429, retry_after: float | None = None
    ) -> None:
        super().__init__(user_message, status=status)
        self.retry_after = retry_after


class ProviderUnavailable(ProviderError):
    """5xx, 408/504, timeouts and connection errors: retried with backoff.

    ``maybe_received`` is True when the provider may have acted on the request before the
    trouble (a read timeout, a dropped answer, a gateway timeout): a create that failed this
    way is not sent again, so nobody pays twice."""

    transient = True

    def __init__(
        self,
        user_message: str,
        *,
        status: int | None = None,
        maybe_received: bool = False,
        unreachable: bool = False,
    ) -> None:
        super().__init__(user_message, status=status)
        self.maybe_received = maybe_received
        #: the connection itself failed: the request never left, nothing can have been charged
        self.unreachable = unreachable


class MalformedResponse(ProviderError):
    """The answer was not what the contract says. Retried a bounded number of times."""

    transient = True


class DownloadFailed(ProviderError):
    """The finished image could not be fetched (expired URL, network trouble)."""

    def __init__(self, user_message: str, *, status: int | None = None, expired: bool = False):
        super().__init__(user_message, status=status)
        self.expired = expired
        self.transient = not expired


class DeliveryFailed(TmbotError):
    """The image was made but the platform would not take it."""


# --- configuration ---------------------------------------------------------------------


class ConfigError(TmbotError):
    """The bot itself is misconfigured (bad environment variable, unreadable secret)."""


class DatabaseInUse(ConfigError):
    """Another engine holds the database's lock (SQLite serves one engine at a time)."""


class GenerationTimedOut(ProviderError):
    """A task did not end before the deadline; it is failed rather than polled forever."""
