"""Campaigns: their windows, and the summary with baseline and uplift."""

from datetime import date, datetime
from fractions import Fraction
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from campaign.coverage import window_coverage
from campaign.figures import active_count, query_rollups, total_of
from schemas.registry import CampaignIn
from store.audit import record_change
from store.errors import NotFound
from store.periods import keep_period_totals
from store.principal import Principal
from store.scope import NATIONAL, Scope
from store.tables import campaigns


async def put_campaign(
    conn: AsyncConnection, code: str, body: CampaignIn, actor: Principal
) -> dict[str, Any]:
    """Create or replace a campaign's name, windows and report deadline
    (idempotent). Its cities, their local extensions and its registrations stay
    as they are. New windows get their enterprises' totals in the same
    transaction (`store.periods`)."""
    values = body.model_dump()
    statement = insert(campaigns).values(code=code, **values)
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[campaigns.c.code], set_={k: statement.excluded[k] for k in values}
        )
    )
    await keep_period_totals(conn)
    await record_change(conn, actor, "campaign.put", f"campaign {code}", 1)
    return dict((await campaign_row(conn, code))._mapping)


async def campaign_window(conn: AsyncConnection, code: str | None) -> tuple[date, date]:
    """The first and last day of campaign `code`, or of the latest campaign (the
    one that began last) when none is named."""
    if code is not None:
        row = await campaign_row(conn, code)
    else:
        latest = select(campaigns).order_by(campaigns.c.first_day.desc(), campaigns.c.code)
        row = (await conn.execute(latest.limit(1))).first()
        if row is None:
            raise NotFound("unknown_campaign", "no campaign is registered")
    return row.first_day, row.last_day


async def list_campaigns(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Every campaign, the latest first."""
    rows = await conn.execute(
        select(campaigns).order_by(campaigns.c.first_day.desc(), campaigns.c.code)
    )
    return [dict(row._mapping) for row in rows]


async def campaign_row(conn: AsyncConnection, code: str) -> Any:
    row = (await conn.execute(select(campaigns).where(campaigns.c.code == code))).first()
    if row is None:
        raise NotFound("unknown_campaign", f"no campaign {code}")
    return row


def uplift(net_fen: int, baseline_net_fen: int, days: int, baseline_days: int) -> tuple[int, int]:
    """`(uplift_fen, scaled_baseline_fen)`: the baseline's net scaled to the
    campaign's number of days, rounded half away from zero to the fen."""
    scaled = Fraction(baseline_net_fen * days, baseline_days)
    rounded = _round_half_up(scaled)
    return net_fen - rounded, rounded


def _round_half_up(value: Fraction) -> int:
    sign = -1 if value < 0 else 1
    return sign * int((abs(value) + Fraction(1, 2)) // 1)


def uplift_pct(uplift_fen: int, scaled_baseline_fen: int) -> float | None:
    if scaled_baseline_fen == 0:
        return None
    return round(uplift_fen * 100 / scaled_baseline_fen, 2)


async def campaign_summary(
    conn: AsyncConnection, code: str, scope: Scope = NATIONAL, *, now: datetime
) -> dict[str, Any]:
    """The campaign's totals, baseline and uplift over the cities of `scope`, with
    the coverage of the feeds behind them (the window up to today)."""
    c = await campaign_row(conn, code)
    nothing = {**total_of([]), "payer_count": 0}
    (current,) = await query_rollups(conn, [], c.first_day, c.last_day, {}, scope) or [nothing]
    (base,) = await query_rollups(
        conn, [], c.baseline_first_day, c.baseline_last_day, {}, scope
    ) or [nothing]
    days = (c.last_day - c.first_day).days + 1
    baseline_days = (c.baseline_last_day - c.baseline_first_day).days + 1
    uplift_fen, scaled = uplift(current["net_fen"], base["net_fen"], days, baseline_days)
    return {
        "campaign": c.code,
        "first_day": c.first_day,
        "last_day": c.last_day,
        "measures": current,
        "active_cities": await active_count(conn, "city", c.first_day, c.last_day, scope),
        "active_enterprises": await active_count(
            conn, "enterprise", c.first_day, c.last_day, scope
        ),
        "baseline": {
            "first_day": c.baseline_first_day,
            "last_day": c.baseline_last_day,
            "measures": base,
        },
        "uplift_fen": uplift_fen,
        "uplift_pct": uplift_pct(uplift_fen, scaled),
        "coverage": await window_coverage(conn, c.first_day, c.last_day, now),
    }
