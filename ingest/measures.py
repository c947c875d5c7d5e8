"""The rollup measures, as SQL over stored records and as polars expressions over
a batch's records: the rollups and the delivery calendar both count with them, and
`payfeed rollups verify` proves the two spellings agree (`differing_rows`)."""

from collections.abc import Sequence
from datetime import date
from typing import Any

import polars as pl
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from store.tables import ROLLUP_MEASURES

MEASURE_SQL = {
    "payment_count": "count(*) FILTER (WHERE kind = 'payment')",
    "refund_count": "count(*) FILTER (WHERE kind = 'refund')",
    "gross_fen": "coalesce(sum(amount_fen) FILTER (WHERE kind = 'payment'), 0)",
    "refund_fen": "coalesce(sum(amount_fen) FILTER (WHERE kind = 'refund'), 0)",
}
assert tuple(MEASURE_SQL) == ROLLUP_MEASURES

MEASURE_EXPRS = {
    "payment_count": (pl.col("kind") == "payment").sum(),
    "refund_count": (pl.col("kind") == "refund").sum(),
    "gross_fen": pl.col("amount_fen").filter(pl.col("kind") == "payment").sum(),
    "refund_fen": pl.col("amount_fen").filter(pl.col("kind") == "refund").sum(),
}
assert tuple(MEASURE_EXPRS) == ROLLUP_MEASURES


async def differing_rows(
    conn: AsyncConnection,
    table: str,
    keys: Sequence[str],
    columns: Sequence[str],
    recount: str,
    first_day: date,
    last_day: date,
    stored: str = "day BETWEEN :first AND :last",
) -> list[dict[str, Any]]:
    """Every row of `table` (keyed by `keys`) that `stored` selects — by default
    its days `:first` to `:last` — and that differs from `recount`, a SELECT of
    the same keys and `columns` from the stored records of those days; as
    `{"table", keys..., "stored": {...}, "recount": {...}}`, a row missing on
    one side all None there."""
    pick = ", ".join(f"{side}.{c} AS {side}_{c}" for side in ("s", "c") for c in columns)
    same = " AND ".join(f"s.{c} IS NOT DISTINCT FROM c.{c}" for c in columns)
    key = ", ".join(keys)
    statement = text(
        f"WITH c AS ({recount}), "
        f"s AS (SELECT * FROM {table} WHERE {stored}) "
        f"SELECT {key}, {pick} FROM s FULL JOIN c USING ({key}) "
        f"WHERE NOT ({same}) ORDER BY {key}"
    )
    rows = await conn.execute(statement, {"first": first_day, "last": last_day})
    return [
        {
            "table": table,
            **{k: row[k] for k in keys},
            "stored": {c: row[f"s_{c}"] for c in columns},
            "recount": {c: row[f"c_{c}"] for c in columns},
        }
        for row in rows.mappings()
    ]
