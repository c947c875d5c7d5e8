"""The quarantine: records held back (`unknown_merchant`, `conflict`) with their
standard form, until ops fix the registry and replay them, or discard them."""

from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ingest.tables import quarantine


def quarantine_filter(
    code: str | None = None, provider: str | None = None, ids: list[int] | None = None
) -> list[ColumnElement[bool]]:
    conditions = []
    if code:
        conditions.append(quarantine.c.code == code)
    if provider:
        conditions.append(quarantine.c.provider == provider)
    if ids is not None:
        conditions.append(quarantine.c.id.in_(ids))
    return conditions


async def list_quarantine(
    conn: AsyncConnection,
    *,
    code: str | None = None,
    provider: str | None = None,
    limit: int = 1000,
) -> dict[str, Any]:
    where = quarantine_filter(code, provider)
    total = (
        await conn.execute(select(func.count()).select_from(quarantine).where(*where))
    ).scalar_one()
    rows = await conn.execute(
        select(quarantine).where(*where).order_by(quarantine.c.id).limit(limit)
    )
    return {"total": total, "items": [dict(row._mapping) for row in rows]}
