"""The rollup measures, as SQL over stored records and as polars expressions over
a batch's records: the rollups and the delivery calendar both count with them, and
`payfeed rollups verify` proves the two spellings agree."""

import polars as pl

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
