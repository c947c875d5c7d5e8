"""The quarantine: records held back (`unknown_merchant`, `conflict`) with their
standard form, until ops fix the registry and replay them, or discard them.
Every replay and discard is recorded in `quarantine_actions`."""

import asyncio
import logging
import time
from datetime import datetime
from typing import Any

import orjson
import polars as pl
from sqlalchemy import ColumnElement, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ingest.adapters.base import RawBatch, text_column
from ingest.normalise import Window
from ingest.pipeline import Pipeline, Source
from ingest.writer import WriteResult
from schemas.records import QUARANTINED_CODES, STANDARD_FIELDS
from store.audit import record_change
from store.db import raw_connection
from store.errors import BadRequest
from store.principal import Principal
from store.scope import NATIONAL, Scope
from store.tables import enterprises, merchant_accounts, quarantine, quarantine_actions

log = logging.getLogger(__name__)


def in_scope(scope: Scope) -> list[ColumnElement[bool]]:
    """Held records whose merchant account resolves, with the registry as it is now,
    to a city of `scope` (the chain store's city over its enterprise's). Records
    that resolve nowhere are in the national scope only."""
    if scope.national:
        return []
    held = quarantine.alias("held")
    city = func.coalesce(merchant_accounts.c.city, enterprises.c.city)
    resolved = (
        select(held.c.id)
        .join(
            merchant_accounts,
            (merchant_accounts.c.provider == held.c.provider)
            & (merchant_accounts.c.merchant_id == held.c.record["merchant_id"].astext),
        )
        .join(enterprises, enterprises.c.uscc == merchant_accounts.c.uscc)
        .where(*scope.where(city))
    )
    return [quarantine.c.id.in_(resolved)]


def quarantine_filter(
    code: str | None = None,
    provider: str | None = None,
    ids: list[int] | None = None,
    scope: Scope = NATIONAL,
) -> list[ColumnElement[bool]]:
    conditions = in_scope(scope)
    if code:
        if code not in QUARANTINED_CODES:
            raise BadRequest(
                "unknown_code", f"code is one of {', '.join(sorted(QUARANTINED_CODES))}"
            )
        conditions.append(quarantine.c.code == code)
    if provider:
        conditions.append(quarantine.c.provider == provider)
    if ids is not None:
        conditions.append(quarantine.c.id.in_(ids))
    return conditions


async def require_in_scope(conn: AsyncConnection, scope: Scope, ids: list[int] | None) -> None:
    """403 `out_of_scope` unless every id given is a held record of `scope`: an
    action on a selection of ids is all or nothing."""
    if scope.national or ids is None:
        return
    wanted = set(ids)
    found = (
        await conn.execute(
            select(func.count())
            .select_from(quarantine)
            .where(*quarantine_filter(ids=list(wanted), scope=scope))
        )
    ).scalar_one()
    if found != len(wanted):
        raise scope.refusal("a held record selected")


async def list_quarantine(
    conn: AsyncConnection,
    *,
    code: str | None = None,
    provider: str | None = None,
    arrived_from: datetime | None = None,
    arrived_before: datetime | None = None,
    after_id: int | None = None,
    limit: int = 1000,
    scope: Scope = NATIONAL,
) -> dict[str, Any]:
    """Held records in arrival order, `limit` at a time after `after_id`;
    `total` counts every one matching the filters, and `more` says whether a
    page follows."""
    where = quarantine_filter(code, provider, scope=scope)
    if arrived_from is not None:
        where.append(quarantine.c.created_at >= arrived_from)
    if arrived_before is not None:
        where.append(quarantine.c.created_at < arrived_before)
    total = (
        await conn.execute(select(func.count()).select_from(quarantine).where(*where))
    ).scalar_one()
    if after_id is not None:
        where.append(quarantine.c.id > after_id)
    shown = [c for c in quarantine.c if c.name != "digest"]
    rows = await conn.execute(
        select(*shown).where(*where).order_by(quarantine.c.id).limit(limit + 1)
    )
    items = [dict(row._mapping) for row in rows]
    return {"total": total, "items": items[:limit], "more": len(items) > limit}


async def quarantine_sizes(conn: AsyncConnection) -> dict[tuple[str, str], int]:
    """Held records by provider and code."""
    rows = await conn.execute(
        select(quarantine.c.provider, quarantine.c.code, func.count()).group_by(
            quarantine.c.provider, quarantine.c.code
        )
    )
    return {(provider, code): int(count) for provider, code, count in rows}


REPLAY_CHUNK = 10_000

UPDATE_HELD = """
UPDATE quarantine q SET code = u.code, message = u.message
FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u(id, code, message)
WHERE q.id = u.id
"""


def _filters(code: str | None, provider: str | None, ids: list[int] | None) -> dict[str, Any]:
    given = {"code": code, "provider": provider, "ids": ids}
    return {k: v for k, v in given.items() if v is not None}


async def replay_quarantine(
    conn: AsyncConnection,
    pipeline: Pipeline,
    *,
    actor: Principal,
    now: datetime,
    code: str | None = None,
    provider: str | None = None,
    ids: list[int] | None = None,
) -> dict[str, int]:
    """Run the selected held records of the actor's scope again through the whole path (normalise,
    write) with the registry as it is now, one batch per provider and chunk.

    A record that goes in (inserted, or already stored with the same content)
    leaves the quarantine; one that is held again keeps its row (id, batch,
    source, time) with its code and message brought up to date, so nothing is
    ever held twice and replaying again inserts nothing more. The rows are locked
    first: a concurrent replay of the same rows waits, then skips those gone."""
    window = await pipeline.window(conn)
    # Bad messages (`malformed`) hold no standard record: discard them, never replay.
    await require_in_scope(conn, actor.scope, ids)
    where = [
        *quarantine_filter(code, provider, ids, actor.scope),
        quarantine.c.code.in_(QUARANTINED_CODES),
    ]
    answer = {"replayed": 0, "inserted": 0, "duplicates": 0, "still_quarantined": 0}
    last_id = 0
    while True:
        chunk = (
            await conn.execute(
                select(quarantine.c.id, quarantine.c.provider, quarantine.c.record)
                .where(*where, quarantine.c.id > last_id)
                .order_by(quarantine.c.id)
                .limit(REPLAY_CHUNK)
                .with_for_update()
            )
        ).all()
        if not chunk:
            break
        last_id = chunk[-1].id
        by_provider: dict[str, list[Any]] = {}
        for row in chunk:
            by_provider.setdefault(row.provider, []).append(row)
        for held_provider, rows in sorted(by_provider.items()):
            result = await _replay_rows(conn, pipeline, held_provider, rows, window, now)
            answer["replayed"] += len(rows)
            answer["inserted"] += result.inserted
            answer["duplicates"] += result.duplicates
            answer["still_quarantined"] += len(result.errors)
    await record_action(conn, "replay", actor, _filters(code, provider, ids), answer["replayed"])
    log.info("quarantine replayed", extra={"actor": actor.name, **answer})
    return answer


async def _replay_rows(
    conn: AsyncConnection,
    pipeline: Pipeline,
    provider: str,
    rows: list[Any],
    window: Window,
    now: datetime,
) -> WriteResult:
    """One provider's held rows as a batch whose `index` is the position in `rows`."""
    started = time.monotonic()
    records = [row.record for row in rows]
    frame = pl.DataFrame(
        {
            "index": pl.Series(range(len(rows)), dtype=pl.Int64),
            **{name: text_column([r.get(name) for r in records]) for name in STANDARD_FIELDS},
            "payer_hash": text_column([r.get("payer_hash") for r in records]),
        }
    )
    raw = RawBatch(frame)
    normalised = await asyncio.to_thread(pipeline.prepare, raw, window, now)
    result = await pipeline.write(conn, provider, raw, normalised, hold=False)
    kept = {error.index: error for error in result.errors}
    pg = await raw_connection(conn)
    released = [row.id for index, row in enumerate(rows) if index not in kept]
    if released:
        await pg.execute("DELETE FROM quarantine WHERE id = ANY($1::bigint[])", released)
    if kept:
        await pg.execute(
            UPDATE_HELD,
            [rows[index].id for index in kept],
            [error.code for error in kept.values()],
            [error.message for error in kept.values()],
        )
    pipeline.report(
        Source.REPLAY, provider, result, time.monotonic() - started, first_id=rows[0].id
    )
    return result


async def discard_quarantine(
    conn: AsyncConnection,
    *,
    actor: Principal,
    code: str | None = None,
    provider: str | None = None,
    ids: list[int] | None = None,
) -> dict[str, int]:
    """Delete the selected held records of the actor's scope for good; the action is
    recorded."""
    await require_in_scope(conn, actor.scope, ids)
    deleted = await conn.execute(
        delete(quarantine)
        .where(*quarantine_filter(code, provider, ids, actor.scope))
        .returning(quarantine.c.id)
    )
    count = len(deleted.all())
    await record_action(conn, "discard", actor, _filters(code, provider, ids), count)
    log.info("quarantine discarded", extra={"actor": actor.name, "discarded": count})
    return {"discarded": count}


async def record_action(
    conn: AsyncConnection, action: str, actor: Principal, filters: dict[str, Any], count: int
) -> None:
    """The action in the quarantine's own trail and in the audit trail."""
    await conn.execute(
        insert(quarantine_actions).values(
            action=action, actor=actor.name, filters=filters, count=count
        )
    )
    await record_change(
        conn, actor, f"quarantine.{action}", orjson.dumps(filters).decode() or "{}", count
    )


async def list_actions(conn: AsyncConnection, *, limit: int = 100) -> list[dict[str, Any]]:
    """The latest quarantine actions first: who, when, what selection, how many."""
    rows = await conn.execute(
        select(quarantine_actions).order_by(quarantine_actions.c.id.desc()).limit(limit)
    )
    return [dict(row._mapping) for row in rows]
