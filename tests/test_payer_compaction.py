"""The compactor's sketches have the registers, and so the estimates, that
updating each stored sketch payer by payer in the order they were queued gives,
at every grain and for a kept campaign period, whether a round's keys hold
hundreds of payers each (a day of a few merchants) or one or two (many
enterprises over many days); a rebuild from the records gives the same again."""

import io
import random
import struct
from collections.abc import Iterable
from datetime import date
from typing import Any

import httpx
import polars as pl
import pytest
from datasketches import hll_sketch, hll_union, tgt_hll_type
from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncEngine

from ingest.payers import compact_all
from ingest.rollups import rebuild_rollups
from store.sketches import LG_K, SKETCH_TABLES, TARGET, estimate, estimate_of, union_of
from store.tables import payers_period, rollup_enterprise_day_payers
from tests.factories import push, record, register, uscc

WINDOW = (date(2023, 9, 9), date(2023, 10, 8))
"""The seeded campaign 2023's window: the period the compactor keeps for these days."""
CITIES = ("330100", "320100")
MCCS = ("5812", "5411", None)

Sketches = dict[tuple[Any, ...], tuple[bytes, int | None]]


def test_estimate_of_a_sketch_is_the_estimate_of_its_union() -> None:
    rng = random.Random(7)
    for size in (0, 1, 7, 8, 100, 383, 384, 385, 1000, 5000, 50_000):
        sketch = hll_sketch(LG_K, TARGET)
        for _ in range(size):
            sketch.update(f"{rng.getrandbits(256):064x}")
        more = hll_sketch(LG_K, tgt_hll_type.HLL_8)
        for _ in range(rng.randrange(1, 3000)):
            more.update(f"{rng.getrandbits(256):064x}")
        union = hll_union(LG_K)
        union.update(sketch)
        union.update(more)
        # Updated in order, merged (out of order), and updated again after a merge.
        after_merge = hll_sketch.deserialize(union.get_result(TARGET).serialize_compact())
        for _ in range(size // 2):
            after_merge.update(f"{rng.getrandbits(256):064x}")
        for one in (sketch, union.get_result(TARGET), after_merge):
            assert estimate_of(one) == estimate(union_of([one]))
            assert estimate_of(bytes(one.serialize_compact())) == estimate(union_of([one]))


def payments(
    rng: random.Random, tag: str, count: int, merchants: int, days: int, payers: int
) -> list[dict[str, Any]]:
    return [
        record(
            f"{tag}{i}",
            merchant_id=f"M{rng.randrange(merchants)}",
            occurred_at=f"2023-09-{9 + rng.randrange(days):02d}T12:00:00+08:00",
            channel=rng.choice(("offline", "online")),
            mcc=rng.choice(MCCS),
            payer_ref=f"payer-{rng.randrange(payers)}",
        )
        for i in range(count)
    ]


async def stored(engine: AsyncEngine, table: Table) -> Sketches:
    dims = [c.name for c in table.primary_key.columns]
    estimated = "estimate" if "estimate" in table.c else "NULL"
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(f"SELECT {', '.join(dims)}, sketch, {estimated} FROM {table.name}")
        )
        return {tuple(row[:-2]): (bytes(row[-2]), row[-1]) for row in rows}


async def queued(engine: AsyncEngine) -> pl.DataFrame:
    """What the next compaction merges: the queued batches in order."""
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT payers FROM payer_queue ORDER BY id"))
        return pl.concat([pl.read_ipc(io.BytesIO(payers)) for (payers,) in rows])


def per_hash(base: Sketches, table: Table, payers: pl.DataFrame) -> Sketches:
    """Every key's stored sketch updated payer by payer, in the order the payers
    were queued, with the estimate of the registers where the table keeps one."""
    dims = [c.name for c in table.primary_key.columns]
    grouped = payers.group_by(dims, maintain_order=True).agg(pl.col("payer_hash"))
    sketches = dict(base)
    for *key, hashes in grouped.iter_rows():
        before = sketches.get(tuple(key))
        sketch = hll_sketch.deserialize(before[0]) if before else hll_sketch(LG_K, TARGET)
        for payer_hash in hashes:
            sketch.update(payer_hash.hex())
        kept = estimate(union_of([sketch])) if "estimate" in table.c else None
        sketches[tuple(key)] = (bytes(sketch.serialize_compact()), kept)
    return sketches


def in_window(payers: pl.DataFrame) -> pl.DataFrame:
    return payers.filter(pl.col("day").is_between(*WINDOW)).with_columns(
        first_day=pl.lit(WINDOW[0]), last_day=pl.lit(WINDOW[1])
    )


def registers(image: bytes) -> Any:
    """What a serialized HLL_4 sketch holds whatever the order its payers came in
    (DataSketches' format): its coupons in list or set mode; else its preamble
    without the flags (out of order or not) and the order-dependent HIP
    estimate, its 4-bit registers and its exceptions."""
    mode = image[7] & 3
    if mode == 0:
        return sorted(struct.unpack_from(f"<{image[6]}I", image, 8))
    if mode == 1:
        (count,) = struct.unpack_from("<I", image, 8)
        return sorted(struct.unpack_from(f"<{count}I", image, 12))
    (exceptions,) = struct.unpack_from("<I", image, 36)
    end = 40 + (1 << LG_K) // 2
    fixed = image[:5] + image[6:8] + image[16:end]
    return fixed, sorted(struct.unpack_from(f"<{exceptions}I", image, end))


def same_registers(sketches: Sketches) -> dict[tuple[Any, ...], tuple[Any, int | None]]:
    return {key: (registers(sketch), kept) for key, (sketch, kept) in sketches.items()}


TABLES: Iterable[Table] = (*SKETCH_TABLES, payers_period)


@pytest.mark.parametrize(
    ("merchants", "days", "records", "payers"),
    [
        (4, 1, 6000, 5000),  # a day of a few merchants: hundreds of payers per key
        (40, 20, 1500, 100_000),  # scattered: one or two payers per enterprise-day
    ],
    ids=["few-merchants-one-day", "scattered"],
)
async def test_compacted_sketches_are_the_per_payer_sketches(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    provider_token: Any,
    engine: AsyncEngine,
    merchants: int,
    days: int,
    records: int,
    payers: int,
) -> None:
    cmb = await provider_token("cmb")
    codes = [uscc() for _ in range(merchants)]
    enterprises = [
        {"uscc": code, "name": f"企业{i}", "city": CITIES[i % 2], "kind": "retail"}
        for i, code in enumerate(codes)
    ]
    accounts = [
        {"provider": "cmb", "merchant_id": f"M{i}", "uscc": code} for i, code in enumerate(codes)
    ]
    assert (await register(client, admin, "enterprises", enterprises)).status_code == 200
    assert (await register(client, admin, "merchant-accounts", accounts)).status_code == 200
    rng = random.Random(merchants)
    first = payments(rng, "A", records, merchants, days, payers)
    assert (await push(client, cmb, "first", first)).json()["inserted"] == records
    await compact_all(engine)  # the sketches exist, and the campaign's window is kept
    base = {table: await stored(engine, table) for table in TABLES}
    assert base[payers_period]

    for n in range(2):
        batch = payments(rng, f"B{n}", records, merchants, days, payers)
        assert (await push(client, cmb, f"more{n}", batch)).json()["inserted"] == records
    merged = await queued(engine)
    assert await compact_all(engine) == 2
    expected = {table: per_hash(base[table], table, merged) for table in SKETCH_TABLES}
    expected[payers_period] = per_hash(base[payers_period], payers_period, in_window(merged))
    for table in TABLES:
        compacted = await stored(engine, table)
        assert same_registers(compacted) == same_registers(expected[table]), table.name
        # An enterprise-day's or a period's payers are merged in the order they came:
        # the same bytes.
        if table in (rollup_enterprise_day_payers, payers_period):
            assert compacted == expected[table]

    async with engine.begin() as conn:
        await rebuild_rollups(conn, date(2023, 9, 1), date(2023, 9, 30))
    for table in TABLES:
        rebuilt = await stored(engine, table)
        assert same_registers(rebuilt) == same_registers(expected[table]), table.name


async def test_full_sketches_are_updated_in_their_own_pages_not_in_toast(
    client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any, engine: AsyncEngine
) -> None:
    """A full sketch (2,090 bytes) would be stored out of line, and every update
    by the compactor would leave a dead TOAST value behind (20 GB at 100 M
    records): none of the sketch tables has written a byte of TOAST."""
    cmb = await provider_token("cmb")
    code = uscc()
    enterprise = {"uscc": code, "name": "企业", "city": CITIES[0], "kind": "retail"}
    assert (await register(client, admin, "enterprises", [enterprise])).status_code == 200
    account = {"provider": "cmb", "merchant_id": "M0", "uscc": code}
    assert (await register(client, admin, "merchant-accounts", [account])).status_code == 200
    rng = random.Random(7)
    for n in range(2):  # stored, then updated
        batch = payments(rng, f"F{n}", 3000, merchants=1, days=1, payers=100_000)
        assert (await push(client, cmb, f"full{n}", batch)).json()["inserted"] == 3000
        await compact_all(engine)
    async with engine.connect() as conn:
        for table in TABLES:
            longest, toast = (
                await conn.execute(
                    text(
                        f"SELECT (SELECT max(octet_length(sketch)) FROM {table.name}), "
                        "pg_relation_size(reltoastrelid) FROM pg_class WHERE relname = :name"
                    ),
                    {"name": table.name},
                )
            ).one()
            assert longest > 2032, table.name  # past the 2 KB at which rows are toasted
            assert toast == 0, table.name
