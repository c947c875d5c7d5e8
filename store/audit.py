"""The audit trail: one appended row per change made through payfeed —
registrations, campaign settings, tokens, quarantine actions, rebuilds,
publications, submissions, batches — with who made it (token id, role, region;
role `cli` for the command line, `schedule` for scheduled publishing), what, on
what and how many rows.

The row is written in the change's own transaction, so a change and its audit row
commit together or not at all. The table is append-only: a trigger refuses
updates and deletes.
"""

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.records import LOCAL_TIME_ZONE
from store.principal import Principal
from store.tables import audit


async def record_change(
    conn: AsyncConnection, actor: Principal, action: str, target: str, count: int
) -> None:
    await conn.execute(
        audit.insert().values(
            actor_token_id=actor.token_id,
            role=actor.source if actor.token_id is None else actor.role.value,
            region=actor.region,
            action=action,
            target=target,
            count=count,
        )
    )


async def audit_rows(
    conn: AsyncConnection,
    *,
    actor: int | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Audit rows, newest first; `actor` a token id, `action` exact or a prefix
    ending in `.` (`registry.` for every registration)."""
    conditions = []
    if actor is not None:
        conditions.append(audit.c.actor_token_id == actor)
    if action is not None:
        conditions.append(
            audit.c.action.startswith(action, autoescape=True)
            if action.endswith(".")
            else audit.c.action == action
        )
    if since is not None:
        conditions.append(audit.c.at >= since)
    if until is not None:
        conditions.append(audit.c.at <= until)
    rows = await conn.execute(
        select(audit).where(*conditions).order_by(audit.c.id.desc()).limit(limit)
    )
    # Plain `str` keys: column names are a `str` subclass that JSON encoders refuse.
    return [{str(k): v for k, v in row._mapping.items()} for row in rows]


def local(moment: datetime | None) -> datetime | None:
    """A time without an offset is Asia/Shanghai's, as every day of the campaign."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=ZoneInfo(LOCAL_TIME_ZONE))
