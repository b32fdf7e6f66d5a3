"""Stored rows <-> records, for both dialects (:mod:`storage.sqlite`, :mod:`storage.postgres`).

Pure conversions: a row is anything indexable by column name (``sqlite3.Row``,
``asyncpg.Record``), and what goes in is a tuple or a dict of Python values both drivers
bind the same way. The columns of the generations table are named once, here.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from tmbot.domain import Actor, GenerationSpec, Home, Place, ProviderName
from tmbot.records import (
    Budget,
    BudgetPeriod,
    Generation,
    GenStatus,
    KeyBinding,
    KeyRef,
    KeyScope,
    MessageLink,
    OutboxEntry,
    PersonLink,
    TeamLink,
    UserSettings,
)


class Row(Protocol):
    """A stored row: its columns by name."""

    def __getitem__(self, key: str, /) -> Any: ...


def key_binding_to_row(binding: KeyBinding) -> tuple[object, ...]:
    ref = binding.ref
    return (
        ref.scope.value,
        ref.tenant,
        ref.owner,
        ref.provider.value,
        binding.ciphertext,
        binding.fingerprint,
        binding.created_at,
        binding.balance,
        binding.balance_seen_at,
    )


def key_ref_from_row(row: Row, prefix: str = "") -> KeyRef:
    """A KeyRef from columns ``scope, tenant, owner, provider`` (behind ``prefix``)."""
    return KeyRef(
        scope=KeyScope(row[f"{prefix}scope"]),
        tenant=row[f"{prefix}tenant"],
        owner=row[f"{prefix}owner"],
        provider=ProviderName(row[f"{prefix}provider"]),
    )


def key_binding_from_row(row: Row) -> KeyBinding:
    return KeyBinding(
        ref=key_ref_from_row(row),
        ciphertext=bytes(row["ciphertext"]),
        fingerprint=row["fingerprint"],
        created_at=row["created_at"],
        balance=row["balance"],
        balance_seen_at=row["balance_seen_at"],
    )


def settings_to_row(settings: UserSettings) -> tuple[object, ...]:
    return (
        settings.provider.value if settings.provider is not None else None,
        settings.model,
        settings.aspect_ratio,
        settings.resolution,
        settings.taste,
    )


def settings_from_row(row: Row) -> UserSettings:
    provider = row["provider"]
    return UserSettings(
        provider=ProviderName(provider) if provider is not None else None,
        model=row["model"],
        aspect_ratio=row["aspect_ratio"],
        resolution=row["resolution"],
        taste=row["taste"],
    )


#: The generations table's columns, in the order of :func:`generation_to_row`'s keys.
GENERATION_COLUMNS = (
    "id",
    "actor_platform",
    "actor_tenant",
    "actor_user_id",
    "actor_is_admin",
    "actor_display_name",
    "place_platform",
    "place_channel",
    "place_thread",
    "place_card_message",
    "spec_provider",
    "spec_brief",
    "spec_model",
    "spec_aspect_ratio",
    "spec_resolution",
    "spec_taste",
    "spec_image_urls",
    "key_scope",
    "key_tenant",
    "key_owner",
    "key_provider",
    "status",
    "created_at",
    "updated_at",
    "cost",
    "task_id",
    "estimate_seconds",
    "submitted_at",
    "completed_at",
    "image_url",
    "prompt_used",
    "expires_at",
    "credits_consumed",
    "credits_remaining",
    "error",
    "delivered_at",
    "regenerated_from",
    "deleted_at",
    "deleted_by",
    "home_team",
    "home_tenant",
    "home_user_id",
)


#: Set when a generation is stored, then recomputed only by link changes (:data:`_REHOME`):
#: the engine's later writes of the row leave them alone.
HOME_COLUMNS = ("home_team", "home_tenant", "home_user_id")


def generation_to_row(g: Generation) -> dict[str, object]:
    row: dict[str, object] = {
        "id": g.id,
        "actor_platform": g.actor.platform,
        "actor_tenant": g.actor.tenant,
        "actor_user_id": g.actor.user_id,
        "actor_is_admin": int(g.actor.is_admin),
        "actor_display_name": g.actor.display_name,
        "place_platform": g.place.platform,
        "place_channel": g.place.channel,
        "place_thread": g.place.thread,
        "place_card_message": g.place.card_message,
        "spec_provider": g.spec.provider.value,
        "spec_brief": g.spec.brief,
        "spec_model": g.spec.model,
        "spec_aspect_ratio": g.spec.aspect_ratio,
        "spec_resolution": g.spec.resolution,
        "spec_taste": g.spec.taste,
        "spec_image_urls": json.dumps(list(g.spec.image_urls), ensure_ascii=False),
        "key_scope": g.key.scope.value,
        "key_tenant": g.key.tenant,
        "key_owner": g.key.owner,
        "key_provider": g.key.provider.value,
        "status": g.status.value,
        "created_at": g.created_at,
        "updated_at": g.updated_at,
        "cost": g.cost,
        "task_id": g.task_id,
        "estimate_seconds": g.estimate_seconds,
        "submitted_at": g.submitted_at,
        "completed_at": g.completed_at,
        "image_url": g.image_url,
        "prompt_used": g.prompt_used,
        "expires_at": g.expires_at,
        "credits_consumed": g.credits_consumed,
        "credits_remaining": g.credits_remaining,
        "error": g.error,
        "delivered_at": g.delivered_at,
        "regenerated_from": g.regenerated_from,
        "deleted_at": g.deleted_at,
        "deleted_by": g.deleted_by,
        "home_team": g.actor.home.team,
        "home_tenant": g.actor.home.tenant,
        "home_user_id": g.actor.home.user_id,
    }
    return row


def home_from_row(row: Row) -> Home | None:
    """The generation's home when it differs from its actor's own identity."""
    tenant, user_id = row["actor_tenant"], row["actor_user_id"]
    home = Home(
        team=row["home_team"] or tenant,
        tenant=row["home_tenant"] or tenant,
        user_id=row["home_user_id"] or user_id,
    )
    return None if home == Home(tenant, tenant, user_id) else home


def generation_from_row(row: Row) -> Generation:
    urls: Any = json.loads(row["spec_image_urls"])
    return Generation(
        id=row["id"],
        actor=Actor(
            platform=row["actor_platform"],
            tenant=row["actor_tenant"],
            user_id=row["actor_user_id"],
            is_admin=bool(row["actor_is_admin"]),
            display_name=row["actor_display_name"],
            linked=home_from_row(row),
        ),
        place=Place(
            platform=row["place_platform"],
            channel=row["place_channel"],
            thread=row["place_thread"],
            card_message=row["place_card_message"],
        ),
        spec=GenerationSpec(
            provider=ProviderName(row["spec_provider"]),
            brief=row["spec_brief"],
            model=row["spec_model"],
            aspect_ratio=row["spec_aspect_ratio"],
            resolution=row["spec_resolution"],
            taste=row["spec_taste"],
            image_urls=tuple(str(url) for url in urls),
        ),
        key=key_ref_from_row(row, "key_"),
        status=GenStatus(row["status"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        cost=row["cost"],
        task_id=row["task_id"],
        estimate_seconds=row["estimate_seconds"],
        submitted_at=row["submitted_at"],
        completed_at=row["completed_at"],
        image_url=row["image_url"],
        prompt_used=row["prompt_used"],
        expires_at=row["expires_at"],
        credits_consumed=row["credits_consumed"],
        credits_remaining=row["credits_remaining"],
        error=row["error"],
        delivered_at=row["delivered_at"],
        regenerated_from=row["regenerated_from"],
        deleted_at=row["deleted_at"],
        deleted_by=row["deleted_by"],
    )


def message_link_to_row(link: MessageLink) -> tuple[object, ...]:
    return (link.platform, link.channel, link.message_id, link.generation_id, link.kind)


def message_link_from_row(row: Row) -> MessageLink:
    return MessageLink(
        platform=row["platform"],
        channel=row["channel"],
        message_id=row["message_id"],
        generation_id=row["generation_id"],
        kind=row["kind"],
    )


def outbox_entry_from_row(row: Row) -> OutboxEntry:
    payload: Any = json.loads(row["payload"])
    return OutboxEntry(
        id=int(row["id"]),
        generation_id=row["generation_id"],
        platform=row["platform"],
        seq=int(row["seq"]),
        kind=row["kind"],
        payload=payload if isinstance(payload, dict) else {},
        attempts=int(row["attempts"]),
        next_attempt_at=float(row["next_attempt_at"]),
        has_blob=bool(row["has_blob"]),
    )


def budget_from_row(row: Row) -> Budget:
    return Budget(
        tenant=row["tenant"],
        member=row["target"],
        amount=int(row["amount"]),
        period=BudgetPeriod(row["period"]),
        updated_at=row["updated_at"],
    )


def key_params(ref: KeyRef) -> tuple[str, str, str, str]:
    return (ref.scope.value, ref.tenant, ref.owner, ref.provider.value)


def team_link_from_row(row: Row) -> TeamLink:
    return TeamLink(
        home=row["home"],
        joined=row["joined"],
        linked_by=row["linked_by"],
        linked_at=row["linked_at"],
    )


def person_link_from_row(row: Row) -> PersonLink:
    return PersonLink(
        home_tenant=row["home_tenant"],
        home_user_id=row["home_user_id"],
        tenant=row["tenant"],
        user_id=row["user_id"],
        linked_at=row["linked_at"],
    )
