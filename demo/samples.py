"""Provider files in their real layouts (FORMATS.md), written from neutral records.

The demo campaign and the benches feed payfeed the files providers really send,
so that every adapter is exercised end to end. A sample record is a dict with
`txn_id`, `kind`, `amount_fen`, `local_time` (naive Asia/Shanghai datetime),
`merchant_id`, `channel`, and optionally `mcc`, `payer_ref`, `original_txn_id`.
"""

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import orjson

UNIONPAY_WIDTHS = (
    3, 11, 11, 6, 10, 19, 12, 4, 2, 21, 2, 32, 2, 6, 10, 13, 13, 4, 15, 2, 2,
    6, 2, 4, 32, 1, 21, 15, 1, 15, 32, 13, 13, 8, 32, 13, 13, 12, 2, 1, 32, 98,
)  # fmt: skip
"""Field widths in GBK bytes; every field is followed by one space."""


def yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def standard_row(r: dict[str, Any]) -> dict[str, Any]:
    """A sample record in the standard record's fields (absent ones as None)."""
    return {
        "txn_id": r["txn_id"],
        "kind": r["kind"],
        "amount_fen": r["amount_fen"],
        "currency": "CNY",
        "occurred_at": r["local_time"].isoformat() + "+08:00",
        "merchant_id": r["merchant_id"],
        "channel": r["channel"],
        "mcc": r.get("mcc"),
        "original_txn_id": r.get("original_txn_id"),
        "payer_ref": r.get("payer_ref"),
    }


def standard_ndjson(records: Iterable[dict[str, Any]]) -> bytes:
    lines = []
    for r in records:
        standard = standard_row(r)
        lines.append(orjson.dumps({k: v for k, v in standard.items() if v is not None}))
    return b"\n".join(lines) + b"\n"


def unionpay_zm(records: Iterable[dict[str, Any]]) -> bytes:
    """A ZM reconciliation file (GBK, fixed width, no header): purchases are type
    01, refunds 04 (退货) referring to their original 查询流水号."""
    lines = []
    for r in records:
        fields = [""] * len(UNIONPAY_WIDTHS)
        fields[0] = "ZM1"
        fields[4] = r["local_time"].strftime("%m%d%H%M%S")
        fields[5] = r.get("payer_ref") or ""
        fields[6] = f"{r['amount_fen']:012d}"
        fields[7] = r.get("mcc") or "5311"
        fields[9] = r["txn_id"]
        fields[19] = "01" if r["kind"] == "payment" else "04"
        fields[26] = r.get("original_txn_id") or ""
        fields[27] = r["merchant_id"]
        fields[30] = "门店"
        fields[33] = "T0000001" if r["channel"] == "offline" else ""
        line = b"".join(
            _fixed(value, width, numeric=i in (6,)) + b" "
            for i, (value, width) in enumerate(zip(fields, UNIONPAY_WIDTHS, strict=True))
        )
        lines.append(line)
    return b"\r\n".join(lines) + b"\r\n"


def _fixed(value: str, width: int, numeric: bool) -> bytes:
    raw = value.encode("gbk")
    return raw.rjust(width, b"0") if numeric else raw.ljust(width, b" ")


ALIPAY_HEADER = (
    "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,"
    "对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,"
    "商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,"
    "退款批次号/请求号,服务费（元）,分润（元）,备注"
)


def alipay_bill(account: str, records: list[dict[str, Any]], first: date, last: date) -> bytes:
    """A 业务明细 bill of one Alipay account (GBK): a refund repeats its sale's
    trade number and carries its own refund request number."""
    stamp = "%Y年%m月%d日 00:00:00"
    exported = datetime(last.year, last.month, last.day, 9)
    lines = [
        "#支付宝业务明细查询",
        f"#账号：[{account}]",
        f"#起始日期：[{first.strftime(stamp)}]   终止日期：[{last.strftime(stamp)}]",
        "#" + "-" * 41 + "业务明细列表" + "-" * 40,
        ALIPAY_HEADER,
    ]
    totals = {"payment": [0, 0], "refund": [0, 0]}
    for r in records:
        refund = r["kind"] == "refund"
        signed = -r["amount_fen"] if refund else r["amount_fen"]
        trade = r["original_txn_id"] if refund else r["txn_id"]
        when = r["local_time"].strftime("%Y-%m-%d %H:%M:%S")
        store = ("S01\t", "门店\t", "T01\t") if r["channel"] == "offline" else ("\t", "\t", "\t")
        lines.append(
            ",".join(
                [
                    f"{trade}\t",
                    f"{r['txn_id']}\t",
                    "退款\t" if refund else "交易\t",
                    "商品",
                    when,
                    when,
                    store[0],
                    store[1],
                    "\t",
                    store[2],
                    f"{r.get('payer_ref') or ''}\t",
                    yuan(signed),
                    yuan(signed),
                    *["0.00"] * 5,
                    "",
                    "0.00\t",
                    "0.00",
                    f"{r['txn_id']}\t" if refund else "\t",
                    "0.00",
                    "0.00",
                    "",
                ]
            )
        )
        totals[r["kind"]][0] += 1
        totals[r["kind"]][1] += signed
    lines += [
        "#" + "-" * 41 + "业务明细列表结束" + "-" * 36,
        f"#交易合计：{totals['payment'][0]}笔，商家实收共{yuan(totals['payment'][1])}元，"
        "商家优惠共0.00元",
        f"#退款合计：{totals['refund'][0]}笔，商家实收退款共{yuan(totals['refund'][1])}元，"
        "商家优惠退款共0.00元",
        f"#导出时间：[{exported:%Y年%m月%d日 %H:%M:%S}]",
    ]
    return ("\r\n".join(lines) + "\r\n").encode("gbk")


WECHAT_HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,"
    "付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,"
    "退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
)


def wechatpay_bill(service_provider: str, records: Iterable[dict[str, Any]]) -> bytes:
    """A 交易账单 (UTF-8, every value after a backtick) of a service provider whose
    sub-merchants are the merchant ids; refunds are rows of their own."""
    lines = [WECHAT_HEADER]
    count = order_total = refund_total = 0
    for r in records:
        refund = r["kind"] == "refund"
        order_no = r["original_txn_id"] if refund else r["txn_id"]
        values = [
            r["local_time"].strftime("%Y-%m-%d %H:%M:%S"),
            "wx2421b1c4370ec43b",
            service_provider,
            r["merchant_id"],
            "POS01" if r["channel"] == "offline" else "",
            order_no,
            f"M{order_no[-12:]}",
            r.get("payer_ref") or "",
            "MICROPAY" if r["channel"] == "offline" else "JSAPI",
            "REFUND" if refund else "SUCCESS",
            "CMB_CREDIT",
            "CNY",
            "0.00" if refund else yuan(r["amount_fen"]),
            "0.00",
            r["txn_id"] if refund else "0",
            f"RF{r['txn_id'][-12:]}" if refund else "0",
            yuan(r["amount_fen"]) if refund else "0.00",
            "0.00",
            "ORIGINAL" if refund else "",
            "SUCCESS" if refund else "",
            "商品",
            "",
            "0.00000",
            "0.60%",
            "0.00" if refund else yuan(r["amount_fen"]),
            yuan(r["amount_fen"]) if refund else "0.00",
            "",
        ]
        lines.append(",".join("`" + v for v in values))
        count += 1
        order_total += 0 if refund else r["amount_fen"]
        refund_total += r["amount_fen"] if refund else 0
    lines.append(
        "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
    )
    lines.append(
        ",".join(
            "`" + v
            for v in (
                str(count),
                yuan(order_total),
                yuan(refund_total),
                "0.00",
                "0.00000",
                yuan(order_total),
                yuan(refund_total),
            )
        )
    )
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")
