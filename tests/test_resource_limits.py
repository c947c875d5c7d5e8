"""Resource limits of a real `payfeed serve` on loopback: compression bombs at the
unpacked limit and over it within a bounded peak memory (psutil), and slow
uploads that leave the pool to everyone else. A few seconds each."""

import functools
import gzip
import io
import socket
import threading
import time
import zipfile
from collections.abc import Callable, Iterator

import httpx
import psutil
import pytest

from tests.served import Served, payfeed_serve

LIMIT = 128 * 1024 * 1024
BOUND = 2 * LIMIT + 200 * 1024 * 1024
"""One request's peak memory: about twice its unpacked size plus 200 MB."""
RETAINED = 64 * 1024 * 1024
"""What the server may still hold once it has answered (allocator slack)."""


@pytest.fixture(scope="module")
def served(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("served")
    with payfeed_serve(database_url, home, max_unpacked_bytes=str(LIMIT)) as server:
        # One small batch first: what a process allocates once is not a request's.
        warm_up = httpx.post(
            f"{server.url}/v1/batches?format=unionpay&settle_date=2023-09-10",
            content=gzip_of(1 << 20),
            headers={
                "Authorization": server.token("--role", "provider", "--provider", "cmb"),
                "X-Batch-Id": "warm-up",
                "Content-Type": "application/gzip",
            },
            timeout=60,
        )
        assert warm_up.status_code == 200, warm_up.text
        yield server


@functools.cache
def gzip_of(size: int) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as packed:
        chunk = bytes(1 << 20)
        for _ in range(size >> 20):
            packed.write(chunk)
        packed.write(bytes(size & ((1 << 20) - 1)))
    return out.getvalue()


@functools.cache
def zip_of(name: str, size: int) -> bytes:
    out = io.BytesIO()
    with (
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open(name, "w", force_zip64=True) as member,
    ):
        chunk = bytes(1 << 20)
        for _ in range(size >> 20):
            member.write(chunk)
        member.write(bytes(size & ((1 << 20) - 1)))
    return out.getvalue()


def peak_growth(
    process: psutil.Process, send: Callable[[], httpx.Response]
) -> tuple[int, int, int]:
    """`send()`'s answer status, the server's peak RSS growth while it ran (sampled
    every 5 ms) and what it still held once answered."""
    before = process.memory_info().rss
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        status = send().status_code
    finally:
        done.set()
        sampler.join()
    return status, peak - before, process.memory_info().rss - before


BOMBS = [
    ("unionpay", "gzip", LIMIT, 200),
    ("unionpay", "gzip", LIMIT + 1, 413),
    ("unionpay", "zip", LIMIT, 200),
    ("unionpay", "zip", LIMIT + 1, 413),
    ("alipay", "gzip", LIMIT, 400),
    ("wechatpay", "zip", LIMIT + 1, 413),
]


@pytest.mark.parametrize(("fmt", "packing", "size", "status"), BOMBS)
def test_a_compression_bomb_stays_within_the_memory_bound(
    served: Served, fmt: str, packing: str, size: int, status: int
) -> None:
    body = gzip_of(size) if packing == "gzip" else zip_of("INN230910ZM_1.csv", size)
    headers = {
        "Authorization": served.token("--role", "provider", "--provider", "cmb"),
        "X-Batch-Id": f"bomb-{fmt}-{packing}-{size}",
        "Content-Type": f"application/{packing}",
    }
    url = f"{served.url}/v1/batches?format={fmt}&settle_date=2023-09-10"
    answered, growth, kept = peak_growth(
        psutil.Process(served.process.pid),
        lambda: httpx.post(url, content=body, headers=headers, timeout=60),
    )

    assert answered == status
    assert growth < BOUND, f"peak grew by {growth >> 20} MB; the bound is {BOUND >> 20} MB"
    assert kept < RETAINED, f"{kept >> 20} MB still held after the answer"


def test_twenty_slow_uploads_leave_a_reader_its_answer_in_a_second(served: Served) -> None:
    provider = served.token("--role", "provider", "--provider", "slow")
    viewer = served.token("--role", "viewer")
    port = int(served.url.rsplit(":", 1)[1])
    uploads = []
    try:
        for n in range(20):
            upload = socket.create_connection(("127.0.0.1", port))
            upload.sendall(
                f"POST /v1/batches HTTP/1.1\r\nHost: payfeed\r\nAuthorization: {provider}\r\n"
                f"X-Batch-Id: slow-{n}\r\nContent-Type: application/json\r\n"
                "Content-Length: 1000\r\nExpect: 100-continue\r\n\r\n".encode()
            )
            uploads.append(upload)
        for upload in uploads:
            # 100 Continue comes once the route reads the body: past authentication.
            upload.settimeout(30)
            assert upload.recv(64).startswith(b"HTTP/1.1 100 Continue")
            upload.sendall(b"[")
        started = time.monotonic()
        read = httpx.get(
            f"{served.url}/v1/rollups",
            params={"from": "2023-09-09", "to": "2023-10-08"},
            headers={"Authorization": viewer},
            timeout=60,
        )
        seconds = time.monotonic() - started
    finally:
        for upload in uploads:
            upload.close()

    assert read.status_code == 200, read.text
    assert seconds < 1.0, f"the reader waited {seconds:.2f} s"
