"""Serializers `make fuzz` gives schemathesis for the batch bodies it cannot send by
itself: a gzip, a zip as a provider's download gives it, and NDJSON — so that the
bodies payfeed unpacks are fuzzed too (loaded through `SCHEMATHESIS_HOOKS`)."""

import gzip
import io
import json
import zipfile
from typing import Any

import schemathesis


def _raw(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value).encode()


@schemathesis.serializer("application/gzip", "application/x-gzip")
def gzipped(ctx: Any, value: Any) -> bytes:
    return gzip.compress(_raw(value))


@schemathesis.serializer("application/zip")
def zipped(ctx: Any, value: Any) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("INN230910ZM_1_业务明细.csv", _raw(value))
    return out.getvalue()


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx: Any, value: Any) -> bytes:
    if isinstance(value, list):
        return b"".join(json.dumps(item).encode() + b"\n" for item in value)
    return _raw(value)
