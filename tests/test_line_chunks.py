"""Backfill's chunking of a provider file, against a line-by-line reading of the
same bytes: every data row in exactly one chunk, in order, counted; each chunk
led by the header; blank lines not counted; the trailer with the last chunk."""

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import backfill
from ingest.adapters import alipay, wechatpay
from ingest.adapters.base import Layout

HEADER = b"h1,h2\r\n"
ROW = st.integers(0, 999).map(lambda i: b"`%d,`x\r\n" % i)
BLANK = st.sampled_from([b"\n", b"\r\n", b"  \r\n", b"\t \n"])
ODD = st.sampled_from([b" lead,x\n", b"a#,`\xe6\x80\xbb\n", b"x,#\n"])
TRAILERS = {
    "wechatpay": ["`总交易单数,`x\r\n".encode(), "总交易单数,x\n".encode()],
    "alipay": [b"#\xbd\xbb\xd2\xd7\xba\xcf\xbc\xc6\r\n"],
}
LAYOUTS = {"wechatpay": wechatpay.LAYOUT, "alipay": alipay.LAYOUT}


@settings(max_examples=300, deadline=None)
@given(
    fmt=st.sampled_from(sorted(LAYOUTS)),
    body=st.lists(st.one_of(ROW, ROW, ROW, BLANK, ODD), max_size=80),
    trailer=st.booleans(),
    chunk_rows=st.integers(1, 12),
    skip_rows=st.integers(0, 30),
    read_bytes=st.integers(1, 64),
    trailing_newline=st.booleans(),
)
def test_chunks_hold_every_data_row_once_in_order(
    fmt: str,
    body: list[bytes],
    trailer: bool,
    chunk_rows: int,
    skip_rows: int,
    read_bytes: int,
    trailing_newline: bool,
) -> None:
    layout: Layout = LAYOUTS[fmt]
    lead = [b"#comment\r\n"] if fmt == "alipay" else []
    tail = [TRAILERS[fmt][len(body) % len(TRAILERS[fmt])], b"`1,`2\r\n"] if trailer else []
    data = b"".join([*lead, HEADER, *body, *tail])
    if not trailing_newline:
        data = data.removesuffix(b"\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(backfill, "READ_BYTES", read_bytes)  # lines across block ends
        chunks = list(backfill.line_chunks(io.BytesIO(data), layout, chunk_rows, skip_rows))

    header = b"".join([*lead, HEADER])
    rows = [line for line in body if not line.isspace()]
    kept = rows[skip_rows:]
    assert all(chunk.body.startswith(header) for chunk in chunks)
    assert [c.rows for c in chunks[:-1]] == [chunk_rows] * (len(chunks) - 1)
    assert [c.offset for c in chunks] == [
        min(skip_rows, len(rows)) + i * chunk_rows for i in range(len(chunks))
    ]
    read = [
        line.rstrip(b"\r\n")
        for chunk in chunks
        for line in chunk.body[len(header) :].split(b"\n")
        if line and not line.isspace()
    ]
    assert read == [line.rstrip(b"\r\n") for line in kept + tail]
    assert sum(c.rows for c in chunks) == len(kept)
    if tail:
        assert chunks[-1].body.rstrip().endswith(b"`1,`2")
