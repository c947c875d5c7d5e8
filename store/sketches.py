"""Distinct payers per rollup row, approximate but mergeable: HyperLogLog sketches.

Exact distinct counts do not add up across rows (a payer who pays on two days is
one payer of the two days together); HLL sketches do: the union of the sketches
of any set of rows estimates the distinct payers of all their records. Each
rollup grain has a sketch table at the same key (`store.tables`), so the lock a
batch takes on a rollup row also guards the row's sketch.

Sketches are Apache DataSketches HLL with lg_k = 12 (4,096 registers, HLL_4, at
most about 2.1 KB per key): relative standard error 1.04/√4096 ≈ 1.6 %, so about
68 % of estimates fall within ±1.6 % of the true count and 99.7 % within ±4.9 %.
Small counts (up to a few hundred payers) are practically exact.

Every estimate payfeed gives or stores is `estimate`: the composite estimate of
a union's registers, a function of the set of payers alone. A sketch's own
estimate depends on the order its payers came in (its HIP estimator), so a
coarse sketch updated batch by batch, the union of its fine sketches and a
rebuild would each give a slightly different count (5,975 and 6,034 for one
enterprise's 22 day sketches merged in two orders). This way an estimate stored
with a coarse sketch is exactly what merging the fine sketches under it gives.

Why Python here: stock PostgreSQL (and the embedded server) has no HLL type, and
DataSketches updates one item per call; the sketch work is a tight loop over a
batch's payer hashes (well under a microsecond each), done once per batch.
"""

from collections import deque
from collections.abc import Iterable

from datasketches import hll_sketch, hll_union, tgt_hll_type
from sqlalchemy import Table

from store.tables import (
    payers_city_day,
    payers_day,
    payers_period,
    rollup_city_day,
    rollup_city_day_payers,
    rollup_enterprise_day,
    rollup_enterprise_day_payers,
    totals_city_day,
    totals_enterprise_period,
)

LG_K = 12
TARGET = tgt_hll_type.HLL_4
RELATIVE_STANDARD_ERROR = 1.04 / (1 << LG_K) ** 0.5
"""≈ 0.01625: one standard error of `payer_count`, as a fraction of the true count."""

PAYER_COUNT_LAG_SECONDS = 30
"""How far `payer_count` may lag the exact measures while the compactor keeps up
with the feeds: a batch's payers are merged into the sketches by the compactor
(`ingest.payers`) every 5 seconds. In bench/scale.py (10,000 enterprises, a
shared 2-core machine) the oldest queued batch was at most 8.8 s old at
20,000,000 records in time order and 23.5 s at 10,000,000 when every batch
spread over 20 days and all enterprises. With rounds of ten batches the latter
had fallen behind, 104 s at 10,000,000 and growing; a round now takes up to
`COMPACT_BYTES` of queued payers."""


PAYER_TABLES: dict[Table, Table] = {
    rollup_city_day: rollup_city_day_payers,
    rollup_enterprise_day: rollup_enterprise_day_payers,
    totals_city_day: payers_city_day,
    totals_enterprise_period: rollup_enterprise_day_payers,
}
"""The sketch table of each rollup table, keyed as it."""

SKETCH_TABLES: tuple[Table, ...] = (
    payers_day,
    payers_city_day,
    rollup_city_day_payers,
    rollup_enterprise_day_payers,
)
"""Every day grain payers are kept at, coarsest first: a query reads the coarsest
that has the dims, filters and scope it needs. Besides them, `payers_period`
keeps each enterprise over a campaign's window or baseline."""


PERIOD_COLUMNS = frozenset({"enterprise", "city"})
"""What `payers_period` can group and filter by within its period."""


def sketch_table_for(rollup: Table, needed: Iterable[str], period_kept: bool = False) -> Table:
    """The sketch table with the fewest keys per group that has every column in
    `needed` (`province` is the city's prefix): a coarse day grain when it has
    them; `payers_period` (one key per enterprise) when enterprises are needed
    and the query's days are a kept period; else `rollup`'s own."""
    columns = {"city" if name == "province" else name for name in needed}
    for table in SKETCH_TABLES[:2]:
        if columns <= {c.name for c in table.primary_key.columns}:
            return table
    if period_kept and "enterprise" in columns and columns <= PERIOD_COLUMNS:
        return payers_period
    return PAYER_TABLES[rollup]


def union_of(sketches: Iterable[bytes | hll_sketch]) -> hll_union:
    union = hll_union(LG_K)
    for sketch in sketches:
        union.update(hll_sketch.deserialize(sketch) if isinstance(sketch, bytes) else sketch)
    return union


def estimate(union: hll_union) -> int:
    """The estimated distinct payers of a union of sketches, to the unit, from its
    registers alone. Merging the union's own result back into it changes no
    register but marks it out of order, so it uses the composite estimator;
    otherwise a union of one large sketch and small ones would still give the
    large one's order-dependent (HIP) estimate. A union small enough to hold a
    list of payers counts that list either way."""
    union.update(union.get_result(TARGET))
    return int(round(union.get_estimate()))


FLAGS_BYTE = 5
OUT_OF_ORDER = 0x10
"""Where a serialized HLL sketch marks itself out of order (byte 5 of its
preamble, bit 4: the DataSketches format, the same in every language)."""


def estimate_of(sketch: bytes | hll_sketch) -> int:
    """`estimate` of one sketch: what merging it with nothing else gives. A sketch
    marked out of order gives the composite estimate of its registers, as a union
    does, without the union's copy to 8-bit registers and back: about 1 µs
    instead of 35–65 µs once a sketch holds a few hundred payers, which a
    compaction round spends on every key of the grains that store an estimate
    (tests/test_payers.py checks the two agree)."""
    image = bytearray(sketch if isinstance(sketch, bytes) else sketch.serialize_compact())
    image[FLAGS_BYTE] |= OUT_OF_ORDER
    return int(round(hll_sketch.deserialize(bytes(image)).get_estimate()))


def updated(payer_hashes: Iterable[str], base: bytes | None = None) -> hll_sketch:
    sketch = hll_sketch.deserialize(base) if base else hll_sketch(LG_K, TARGET)
    # Each update is one call into the library: a deque that keeps nothing drives
    # `map` in C, half the time of a Python loop over the same calls.
    deque(map(sketch.update, payer_hashes), maxlen=0)
    return sketch
