"""Amounts and local times as every provider adapter reads them: exact fen, never a float."""

import polars as pl

from ingest.adapters.base import fen_from_yuan, local_time


def test_yuan_to_fen_is_exact_and_rejects_what_is_no_amount() -> None:
    texts = ["12", "12.5", "12.05", " -0.01 ", "+3.00", "0012", "9999999999999.99"]
    texts += ["1.234", ".5", "1e3", "12,00", "", "abc", "0.1 5"]
    fen = pl.DataFrame({"t": texts}).select(fen_from_yuan(pl.col("t")))
    assert fen.to_series().to_list() == [
        1200,
        1250,
        1205,
        -1,
        300,
        1200,
        999999999999999,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    ]


def test_local_time_gets_the_shanghai_offset_and_other_text_passes() -> None:
    texts = ["2023-09-09 23:59:59", "2023-09-09T00:00:00", "2023-9-9 1:00:00", "09/09/2023"]
    got = pl.DataFrame({"t": texts}).select(local_time(pl.col("t"))).to_series().to_list()
    assert got == [
        "2023-09-09T23:59:59+08:00",
        "2023-09-09T00:00:00+08:00",
        "2023-9-9 1:00:00",
        "09/09/2023",
    ]
