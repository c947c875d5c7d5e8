"""Provider formats, by the name callers use in `?format=` and `--format`."""

from ingest.adapters import alipay, standard, unionpay, wechatpay
from ingest.adapters.base import Adapter, RawBatch, ReadOptions, RowError
from ingest.errors import BadRequest

FORMATS: dict[str, Adapter] = {
    "standard": standard.read,
    "unionpay": unionpay.read,
    "alipay": alipay.read,
    "wechatpay": wechatpay.read,
}


def adapter_for(fmt: str) -> Adapter:
    try:
        return FORMATS[fmt]
    except KeyError:
        raise BadRequest("unknown_format", f"unknown format {fmt!r}") from None


__all__ = ["FORMATS", "Adapter", "RawBatch", "ReadOptions", "RowError", "adapter_for"]
