"""Provincial submissions (报送): each province reports its own figures to the
ministry as an immutable, numbered, checksummed snapshot of its report.

A submission holds the province's report at city level (the JSON of `GET
/v1/reports/{campaign}?level=city` for the province's scope: its cities and
their total), who submitted it, when, a note and whether it was late (submitted
after the campaign's `report_due` day, Asia/Shanghai). Numbers run 1, 2, 3 … per
campaign and province; a later submission supersedes an earlier one without
changing it (a trigger refuses updates and deletes). `sha256` is the SHA-256 of
the canonical JSON of the body, as for publications, so `verify_submissions`
finds a stored submission that was altered behind payfeed's back.
"""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncConnection

from campaign.campaigns import campaign_row
from campaign.publications import MEASURES, checksum, plain
from campaign.reports import campaign_report
from schemas.records import local_today
from schemas.regions import PROVINCES
from store.audit import record_change
from store.errors import Forbidden, NotFound
from store.principal import Principal
from store.scope import Scope
from store.tables import campaign_cities, submissions

HEADER = ("campaign", "province", "number", "submitted_at", "submitted_by", "note", "late")


def submitting_province(actor: Principal, region: str | None = None) -> str:
    """The province `actor` submits for: a provincial admin's own; the command line
    names one (`region`). A national or city token submits for none."""
    if actor.token_id is None and region is not None:
        return region
    scope = actor.scope
    if scope.region is None or scope.city is not None:
        raise Forbidden(
            "forbidden", "a province's report is submitted by that province's admin token"
        )
    return scope.region


async def submit(
    conn: AsyncConnection, campaign: str, province: str, actor: Principal, note: str, now: datetime
) -> dict[str, Any]:
    """Store the next submission of `province` for `campaign` in the caller's
    transaction: its report now, numbered after the last one."""
    if province not in PROVINCES:
        raise NotFound("unknown_province", f"no province {province}")
    c = await campaign_row(conn, campaign)
    # Submissions of one province take their numbers one after the other.
    await conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
        {"key": f"submission:{campaign}:{province}"},
    )
    latest = (
        await conn.execute(
            select(func.max(submissions.c.number)).where(
                submissions.c.campaign == campaign, submissions.c.province == province
            )
        )
    ).scalar()
    now = now.astimezone(UTC)
    header = {
        "campaign": campaign,
        "province": province,
        "number": (latest or 0) + 1,
        "submitted_at": now.isoformat(),
        "submitted_by": actor.name,
        "note": note,
        "late": c.report_due is not None and local_today(now) > c.report_due,
    }
    report = plain(await campaign_report(conn, campaign, "city", Scope(province), now=now))
    body = {**header, "report": report}
    sha256 = checksum(body)
    await conn.execute(
        submissions.insert().values(
            **header | {"submitted_at": now},
            actor_token_id=actor.token_id,
            sha256=sha256,
            body=body,
        )
    )
    await record_change(
        conn,
        actor,
        "submission.create",
        f"campaign {campaign} province {province} #{header['number']}",
        1,
    )
    return {**body, "sha256": sha256}


def compare(submitted: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
    """How the submitted report's figures differ from the live report's now: per
    city and for the total, each measure that changed (`same` when none did)."""
    changes = []
    before = {row["unit"]: row for row in [*submitted["rows"], submitted["total"]]}
    after = {row["unit"]: row for row in [*live["rows"], live["total"]]}
    for unit in sorted(set(before) | set(after)):
        was, now = before.get(unit, {}), after.get(unit, {})
        for measure in MEASURES:
            old, new = was.get(measure), now.get(measure)
            if old != new:
                change = None if old is None or new is None else new - old
                changes.append(
                    {
                        "unit": unit,
                        "name": (now or was)["name"],
                        "measure": measure,
                        "submitted": old,
                        "live": new,
                        "change": round(change, 2) if isinstance(change, float) else change,
                    }
                )
    return {"same": not changes, "changes": changes}


async def _entry(
    conn: AsyncConnection, row: Any, live: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    if row.province not in live:
        live[row.province] = plain(
            await campaign_report(
                conn, row.campaign, "city", Scope(row.province), now=datetime.now(UTC)
            )
        )
    return {
        "name": PROVINCES[row.province],
        "submitted": True,
        **{k: row.body[k] for k in HEADER},
        "sha256": row.sha256,
        "total": row.body["report"]["total"],
        "compared_with_live": compare(row.body["report"], live[row.province]),
    }


async def list_submissions(
    conn: AsyncConnection, campaign: str, scope: Scope
) -> list[dict[str, Any]]:
    """National: per province taking part (or having submitted), its latest
    submission, or `submitted: false`. A province: every submission of its own,
    oldest first. Each with its total and how it compares with the live report."""
    await campaign_row(conn, campaign)
    if scope.city is not None:
        raise scope.refusal("a province's submissions")
    live: dict[str, dict[str, Any]] = {}
    chosen = select(submissions).where(submissions.c.campaign == campaign)
    if scope.region is not None:
        rows = await conn.execute(
            chosen.where(submissions.c.province == scope.region).order_by(submissions.c.number)
        )
        return [await _entry(conn, row, live) for row in rows]
    latest = {
        row.province: row
        for row in await conn.execute(
            chosen.ext(distinct_on(submissions.c.province)).order_by(
                submissions.c.province, submissions.c.number.desc()
            )
        )
    }
    taking_part = set(
        (
            await conn.execute(
                select(func.left(campaign_cities.c.city, 2)).where(
                    campaign_cities.c.campaign == campaign
                )
            )
        ).scalars()
    )
    listed = []
    for province in sorted(taking_part | set(latest)):
        if province in latest:
            listed.append(await _entry(conn, latest[province], live))
        else:
            listed.append({"province": province, "name": PROVINCES[province], "submitted": False})
    return listed


async def read_submission(
    conn: AsyncConnection, campaign: str, province: str, number: int, scope: Scope
) -> dict[str, Any]:
    if not scope.covers_province(province):
        raise scope.refusal("that province's submission")
    row = (
        await conn.execute(
            select(submissions.c.body, submissions.c.sha256).where(
                submissions.c.campaign == campaign,
                submissions.c.province == province,
                submissions.c.number == number,
            )
        )
    ).first()
    if row is None:
        await campaign_row(conn, campaign)
        raise NotFound(
            "unknown_submission", f"campaign {campaign} has no submission {number} of {province}"
        )
    return {**row.body, "sha256": row.sha256}


async def verify_submissions(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Every submission whose stored checksum or header no longer matches its
    body: `[{"campaign", "province", "number", "sha256", "computed"}]`."""
    altered = []
    for row in await conn.execute(select(submissions).order_by("campaign", "province", "number")):
        computed = checksum(row.body)
        stored = {k: row._mapping[k] for k in HEADER}
        stored["submitted_at"] = row.submitted_at.astimezone(UTC).isoformat()
        if computed != row.sha256 or any(row.body.get(k) != v for k, v in stored.items()):
            altered.append(
                {
                    "campaign": row.campaign,
                    "province": row.province,
                    "number": row.number,
                    "sha256": row.sha256,
                    "computed": computed,
                }
            )
    return altered
