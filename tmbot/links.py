"""Linked teams and accounts: one team, or one person, on two platforms.

``team link`` (an admin) makes a one-time code; an admin of a tenant on another platform
types ``team link CODE`` there, and that tenant (the *joined* one) then shares the code's
tenant's (the *home*'s) team keys, budgets and use of the team keys. The joined tenant's own
team keys and budgets are kept but unused while linked; ``team unlink`` (an admin of either)
brings them back. ``link`` (anyone, in a team-linked tenant) makes a personal code; the same
person types ``link CODE`` on the other platform, and that account then uses the code
maker's personal keys, settings and history, and counts as the same member in the team's
budgets; its own keys and settings are kept unused until ``unlink``.

Codes are 12 characters (60 bits), valid for :data:`CODE_TTL` seconds, stored as a hash and
used once (the store uses the code and makes the link in one transaction). Every refusal
is one sentence and changes nothing.

:meth:`Links.resolve` is where an incoming actor learns its :class:`~tmbot.domain.Home`: the
engine calls it once per request, and every use case reads keys, budgets, settings and
history through ``actor.home``; places (where cards and images go) stay the actor's own.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import replace

from tmbot.commands import LINK_CODE_ALPHABET, LINK_CODE_LENGTH
from tmbot.domain import Actor
from tmbot.errors import Conflict, LinkRefused, NotPermitted
from tmbot.ports import Store
from tmbot.records import (
    KeyBinding,
    KeyScope,
    LinkCode,
    LinkKind,
    PersonLink,
    TeamLink,
    UserSettings,
)
from tmbot.redact import SecretSink
from tmbot.replies import (
    AccountsLinked,
    AccountsUnlinked,
    KeyNote,
    LinkCodeIssued,
    TeamsLinked,
    TeamsUnlinked,
)
from tmbot.texts import platform_name, tenant_name

log = logging.getLogger(__name__)

#: how long a code may be used, in seconds
CODE_TTL = 600.0


def new_code() -> str:
    """A fresh code, as typed (12 characters without dashes)."""
    return "".join(secrets.choice(LINK_CODE_ALPHABET) for _ in range(LINK_CODE_LENGTH))


def shown(code: str) -> str:
    """``ABCD-EFGH-JKLM``."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def code_hash(code: str) -> str:
    """What the store keeps of a (normalised) code."""
    return hashlib.sha256(f"tmbot-link:{code}".encode()).hexdigest()


def _has_a_team(actor: Actor) -> None:
    """Direct messages are one person's, not a team's: they take no team link."""
    if actor.tenant.startswith("discord:dm:"):
        raise LinkRefused(
            "Direct messages have no team to link; an admin runs `team link` in a Discord "
            "server or a Slack workspace."
        )


def _require_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise NotPermitted(
            f"Only admins of {tenant_name(actor.tenant)} can link or unlink it with a team on "
            "another platform; ask one of them."
        )


class Links:
    """The link use cases and the resolution of incoming actors; ``now`` is the wall clock
    (seconds)."""

    def __init__(
        self,
        *,
        store: Store,
        now: Callable[[], float],
        on_secret: SecretSink | None = None,
    ) -> None:
        self.store = store
        self._now = now
        #: the log redactor: a code is a secret for as long as it may be used
        self._on_secret = on_secret

    async def resolve(self, actor: Actor) -> Actor:
        """The actor with its home set (``actor.linked``) when its tenant or account is
        linked; its own platform, tenant and user id stay as they are."""
        return replace(actor, linked=await self.store.resolve_home(actor.tenant, actor.user_id))

    async def member(self, tenant: str, user_id: str) -> str:
        """A member named on ``tenant``'s platform, as the team's budgets know them."""
        home = await self.store.resolve_home(tenant, user_id)
        return home.user_id if home is not None else user_id

    # --- codes -----------------------------------------------------------------------

    async def _issue(self, actor: Actor, kind: LinkKind) -> LinkCodeIssued:
        code, now = new_code(), self._now()
        if self._on_secret is not None:
            self._on_secret(shown(code), ttl=CODE_TTL)
            self._on_secret(code, ttl=CODE_TTL)
        await self.store.put_link_code(
            LinkCode(
                code_hash=code_hash(code),
                kind=kind,
                tenant=actor.tenant,
                user_id=actor.user_id,
                created_at=now,
                expires_at=now + CODE_TTL,
            )
        )
        log.info("%s link code made in %s", kind.value, actor.tenant)
        return LinkCodeIssued(
            kind=kind, code=shown(code), platform=actor.platform, expires_at=now + CODE_TTL, now=now
        )

    async def _usable_code(self, actor: Actor, code: str, kind: LinkKind) -> LinkCode:
        """The stored code, or one sentence saying why it cannot be used here."""
        command = "team link" if kind is LinkKind.TEAM else "link"
        found = await self.store.get_link_code(code_hash(code))
        if found is None:
            raise LinkRefused(
                "That link code is not one tmbot knows (a newer code replaces an older one); "
                f"check it, or make a new one with `{command}` on the other platform."
            )
        if found.kind is not kind:
            raise LinkRefused(
                "That is a code for linking teams; an admin uses it with `team link CODE`."
                if found.kind is LinkKind.TEAM
                else "That is a code for linking one person's accounts; use it with `link CODE`."
            )
        if found.used_at is not None:
            raise LinkRefused(
                f"That link code has already been used (each works once); make a new one with "
                f"`{command}` on the other platform."
            )
        if found.expires_at <= self._now():
            raise LinkRefused(
                f"That link code has expired (codes last {CODE_TTL / 60:g} minutes); make a "
                f"new one with `{command}` on the other platform."
            )
        if found.tenant == actor.tenant:
            raise LinkRefused(
                f"That code was made here, in {tenant_name(actor.tenant)}; type it on the "
                "other platform to link the two."
            )
        if found.platform == actor.platform:
            raise LinkRefused(
                f"That code was made in another {platform_name(actor.platform)} "
                f"{_kind_of_place(actor.platform)}; links join two platforms, so type it on "
                f"the other one (not {platform_name(actor.platform)})."
            )
        return found

    # --- teams -----------------------------------------------------------------------

    async def team_code(self, actor: Actor) -> LinkCodeIssued:
        _require_admin(actor)
        _has_a_team(actor)
        await self._not_in_a_team(actor.tenant)
        return await self._issue(actor, LinkKind.TEAM)

    async def _not_in_a_team(self, tenant: str, *, here: bool = True) -> None:
        link = await self.store.team_link(tenant)
        if link is None:
            return
        other = link.joined if link.home == tenant else link.home
        whose = tenant_name(tenant) if here else f"{tenant_name(tenant)}, where the code was made,"
        raise LinkRefused(
            f"{whose[0].upper()}{whose[1:]} is already linked with {tenant_name(other)}; an admin "
            "runs `team unlink` first to link it with another team."
        )

    async def join_team(self, actor: Actor, code: str) -> TeamsLinked:
        """This tenant joins the team of the tenant where the code was made."""
        _require_admin(actor)
        _has_a_team(actor)
        found = await self._usable_code(actor, code, LinkKind.TEAM)
        await self._not_in_a_team(actor.tenant)
        await self._not_in_a_team(found.tenant, here=False)
        mine = await self.store.list_keys(actor.tenant)
        theirs = await self.store.list_keys(found.tenant)
        budgets = await self.store.list_budgets(actor.tenant)
        link = TeamLink(
            home=found.tenant, joined=actor.tenant, linked_by=actor.user_id, linked_at=self._now()
        )
        if not await self.store.link_teams(link, code_hash=found.code_hash, now=self._now()):
            raise Conflict(
                "That code was used, or one of the two was linked, a moment ago, so nothing "
                "changed; make a new code with `team link` and try again."
            )
        log.info("team link: %s joined %s", link.joined, link.home)
        return TeamsLinked(
            link=link,
            team_keys=_team_keys(theirs),
            set_aside_keys=_team_keys(mine),
            set_aside_budgets=len(budgets),
        )

    async def unlink_team(self, actor: Actor) -> TeamsUnlinked:
        """Either tenant's admin ends the link; accounts linked across it are unlinked too."""
        _require_admin(actor)
        link = await self.store.unlink_teams(actor.tenant)
        if link is not None:
            log.info("team link removed: %s from %s", link.joined, link.home)
        return TeamsUnlinked(link=link)

    # --- accounts --------------------------------------------------------------------

    async def account_code(self, actor: Actor) -> LinkCodeIssued:
        if await self.store.team_link(actor.tenant) is None:
            raise LinkRefused(_NOT_ONE_TEAM.format(here=tenant_name(actor.tenant)))
        await self._not_linked(actor)
        return await self._issue(actor, LinkKind.PERSON)

    async def _not_linked(self, actor: Actor) -> None:
        if await self.store.person_links(actor.tenant, actor.user_id):
            raise LinkRefused(
                "Your account here is already linked with your other one; run `unlink` first "
                "to link it with another."
            )

    async def join_account(self, actor: Actor, code: str) -> AccountsLinked:
        """This account uses the code maker's keys, settings and history from now on."""
        found = await self._usable_code(actor, code, LinkKind.PERSON)
        team = await self.store.team_link(actor.tenant)
        if team is None or {team.home, team.joined} != {found.tenant, actor.tenant}:
            raise LinkRefused(
                f"{tenant_name(actor.tenant)[0].upper()}{tenant_name(actor.tenant)[1:]} and "
                f"{tenant_name(found.tenant)}, where the code was made, are not linked as one "
                "team, so accounts cannot be linked across them; ask an admin to run "
                "`team link` first."
            )
        await self._not_linked(actor)
        if await self.store.person_links(found.tenant, found.user_id):
            raise LinkRefused(
                "The account that made this code has been linked with another since; run "
                "`unlink` there first."
            )
        mine = [
            k
            for k in await self.store.list_keys(actor.tenant)
            if k.ref.scope is KeyScope.USER and k.ref.owner == actor.user_id
        ]
        settings = await self.store.get_settings(actor.tenant, actor.user_id)
        link = PersonLink(
            home_tenant=found.tenant,
            home_user_id=found.user_id,
            tenant=actor.tenant,
            user_id=actor.user_id,
            linked_at=self._now(),
        )
        if not await self.store.link_people(link, code_hash=found.code_hash, now=self._now()):
            raise Conflict(
                "That code was used, or one of the accounts was linked, a moment ago, so "
                "nothing changed; make a new code with `link` and try again."
            )
        log.info(
            "account link: %s in %s joined one in %s", actor.user_id, actor.tenant, found.tenant
        )
        return AccountsLinked(
            link=link,
            set_aside_keys=tuple(KeyNote(k.ref.provider, k.fingerprint) for k in mine),
            set_aside_settings=settings != UserSettings(),
        )

    async def unlink_account(self, actor: Actor) -> AccountsUnlinked:
        removed = await self.store.unlink_people(actor.tenant, actor.user_id)
        return AccountsUnlinked(tuple(removed), here=actor.tenant)


_NOT_ONE_TEAM = (
    "Accounts can be linked only between a Slack workspace and a Discord server that are "
    "linked as one team, and {here} is not; ask an admin to run `team link` first."
)


def _kind_of_place(platform: str) -> str:
    return {"slack": "workspace", "discord": "server"}.get(platform, "session")


def _team_keys(bindings: list[KeyBinding]) -> tuple[KeyNote, ...]:
    return tuple(
        KeyNote(b.ref.provider, b.fingerprint) for b in bindings if b.ref.scope is KeyScope.TEAM
    )
