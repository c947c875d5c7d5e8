"""The data version: what a dashboard's answer depends on, in one number.

Every statement that changes a table the dashboards read (rollups, payer
sketches, the registry and providers, campaigns, the delivery calendar) bumps
`data_version` in its own transaction, by a statement trigger (migrations 0006,
0009, 0011, 0012; 0010 took publications off it): whatever path writes
— a batch, a rebuild, the sketch compactor, a registry import — the version
moves with the data, without any caller having to remember it. The counter's
rows only grow, so their sum never comes back to an earlier value.

Read in the same snapshot as the data it stands for (the read transaction is
REPEATABLE READ), so an answer cached under a version is exactly that
version's answer.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from store.db import raw_connection

CURRENT = (
    "SELECT coalesce(sum(version), 0)::bigint AS version, "
    "CASE WHEN pg_is_in_recovery() THEN pg_last_xact_replay_timestamp() ELSE now() END AS as_of "
    "FROM data_version"
)


@dataclass(frozen=True)
class DataVersion:
    version: int
    as_of: datetime | None
    """When the data read was current: `now()` on the primary; on a streaming
    replica the commit time of the last transaction it replayed (every write
    committed by then is visible), None before it has replayed any."""


async def current_version(conn: AsyncConnection) -> DataVersion:
    """The version in `conn`'s snapshot, the one the figures read with it share."""
    row = (await conn.execute(text(CURRENT))).one()
    return DataVersion(int(row.version), row.as_of)


async def latest_version(conn: AsyncConnection) -> DataVersion:
    """The version last committed, for a connection outside any transaction (is
    a cached answer still current?): straight to the driver, which takes a third
    of SQLAlchemy's time for it."""
    row = await (await raw_connection(conn)).fetchrow(CURRENT)
    return DataVersion(int(row["version"]), row["as_of"])
