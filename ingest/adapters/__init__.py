"""Provider formats, by the name callers use in `?format=` and `--format`."""

from dataclasses import dataclass

from ingest.adapters import alipay, standard, unionpay, wechatpay
from ingest.adapters.base import Adapter, Layout, RawBatch, ReadOptions, RowError
from store.errors import BadRequest


@dataclass(frozen=True)
class Format:
    read: Adapter
    layout: Layout


FORMATS: dict[str, Format] = {
    "standard": Format(standard.read, standard.LAYOUTS[standard.NDJSON]),
    "unionpay": Format(unionpay.read, unionpay.LAYOUT),
    "alipay": Format(alipay.read, alipay.LAYOUT),
    "wechatpay": Format(wechatpay.read, wechatpay.LAYOUT),
}


def format_named(fmt: str) -> Format:
    try:
        return FORMATS[fmt]
    except KeyError:
        raise BadRequest("unknown_format", f"unknown format {fmt!r}") from None


def adapter_for(fmt: str) -> Adapter:
    return format_named(fmt).read


__all__ = [
    "FORMATS",
    "Adapter",
    "Format",
    "Layout",
    "RawBatch",
    "ReadOptions",
    "RowError",
    "adapter_for",
    "format_named",
]
