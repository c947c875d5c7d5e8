"""`GET /`: the public page (no token), in Chinese, readable on a phone.

Server-rendered HTML with an inline SVG chart: every number and the chart work
without JavaScript, and nothing is fetched from anywhere but this page itself
(no CDN, no web font, no script). Amounts are shown in 万元 or 亿元; the exact
figure in yuan and fen is in each amount's `title` (hover) and in the tables.
Cached like the public summary, for at most 60 seconds per process.
"""

from datetime import UTC, datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncConnection

from app.public import cached
from campaign.public import public_page_data
from schemas.records import LOCAL_TIME_ZONE

router = APIRouter(tags=["public"])

PAGE_HEADERS = {
    # Inline styles and the inline SVG only: no script, nothing from elsewhere.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}

TOP_CITIES = 10
CHANGES_SHOWN = 5
MEASURE_ZH = {
    "cities": "参与城市数",
    "enterprises": "参与企业数",
    "activities": "活动数",
    "sessions": "活动场次",
    "policies": "政策数",
    "net_fen": "活动期销售额",
    "baseline_net_fen": "基期销售额",
    "uplift_fen": "拉动增量",
    "uplift_pct": "增幅",
    "records": "交易笔数",
}
LEVELS_FIRST = ("total", "province", "city")
MONEY = {"net_fen", "baseline_net_fen", "uplift_fen"}

STYLE = """
body{font-family:system-ui,-apple-system,"PingFang SC","Noto Sans CJK SC","Microsoft YaHei",
sans-serif;margin:0;color:#1f2937;background:#f5f6f8;line-height:1.5}
header{background:#b91c1c;color:#fff;padding:16px}
header h1{margin:0;font-size:1.3rem}header p{margin:4px 0 0;font-size:.9rem}
main{max-width:960px;margin:auto;padding:12px}
section{background:#fff;border-radius:8px;padding:12px;margin-bottom:12px}
h2{font-size:1.05rem;margin:0 0 8px}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:8px}
.kpi{background:#fef2f2;border-radius:6px;padding:8px}
.kpi b{display:block;font-size:1.25rem;color:#991b1b}.kpi>span{font-size:.8rem;color:#6b7280}
table{border-collapse:collapse;width:100%;font-size:.85rem}
th,td{padding:4px 6px;border-bottom:1px solid #e5e7eb;text-align:right;white-space:nowrap}
th:nth-child(-n+2),td:nth-child(-n+2){text-align:left}
.scroll{overflow-x:auto}svg{width:100%;height:auto}
.muted{color:#6b7280;font-size:.8rem}ul{padding-left:18px;margin:4px 0}
.final{background:#b91c1c;color:#fff;border-radius:4px;padding:0 4px;font-size:.75rem}
.provisional{background:#fef3c7;color:#92400e;border-radius:6px;padding:8px;margin:0 0 8px}
.provisional b{background:#d97706;color:#fff;border-radius:4px;padding:0 4px;margin-right:4px}
"""


def yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100:,}.{abs(fen) % 100:02d}"


def money(fen: int) -> str:
    """In 亿元 from one hundred million yuan up, else in 万元; the exact amount on hover."""
    shown = f"{fen / 10**10:,.2f} 亿元" if abs(fen) >= 10**10 else f"{fen / 10**6:,.2f} 万元"
    return f'<span title="{yuan(fen)} 元（{fen} 分）">{shown}</span>'


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2f}%"


def local_time(iso: str) -> str:
    return (
        datetime.fromisoformat(iso).astimezone(ZoneInfo(LOCAL_TIME_ZONE)).strftime("%Y-%m-%d %H:%M")
    )


def kpis(figures: dict[str, Any]) -> str:
    total = figures["reports"]["city"]["total"]
    days = figures["days"]
    items = [
        ("national-net", money(total["net_fen"]), "全国活动期销售额"),
        ("national-uplift", money(total["uplift_fen"]), f"拉动增量（{pct(total['uplift_pct'])}）"),
        ("days", f"{days['count']} 天", f"统计期 {days['first_day']} 至 {days['last_day']}"),
        ("cities", f"{total['cities']} 个", f"参与城市（企业 {total['enterprises']:,} 家）"),
        ("activities", f"{total['activities']} 项", f"促消费活动（{total['sessions']:,} 场次）"),
        ("policies", f"{total['policies']} 项", "出台支持政策"),
    ]
    cells = "".join(
        f'<div class="kpi" id="{key}"><b>{value}</b><span>{escape(label)}</span></div>'
        for key, value, label in items
    )
    return f'<div class="kpis">{cells}</div>'


def chart(figures: dict[str, Any]) -> str:
    """Net sales per day (bars) against the baseline's daily average (dashed line)."""
    daily, baseline = figures["daily"], figures["baseline_daily_net_fen"]
    width, height, left, bottom, top = 640, 240, 56, 28, 12
    values = [d["net_fen"] for d in daily] or [0]
    high = max(max(values), baseline, 1)
    low = min(min(values), 0)
    span = high - low

    def y(fen: int) -> float:
        return float(top + (high - fen) * (height - top - bottom) / span)

    step = (width - left - 8) / max(len(daily), 1)
    bars = "".join(
        f'<rect x="{left + n * step + step * 0.15:.1f}" y="{min(y(d["net_fen"]), y(0)):.1f}" '
        f'width="{step * 0.7:.1f}" height="{abs(y(0) - y(d["net_fen"])):.1f}" fill="#dc2626">'
        f"<title>{d['day']}：{yuan(d['net_fen'])} 元</title></rect>"
        for n, d in enumerate(daily)
    )
    labels = "".join(
        f'<text x="{left + n * step + step / 2:.1f}" y="{height - 10}" font-size="10" '
        f'text-anchor="middle">{d["day"][5:]}</text>'
        for n, d in enumerate(daily)
        if n % max(1, len(daily) // 6) == 0
    )
    ticks = "".join(
        f'<text x="{left - 4}" y="{y(v) + 4:.1f}" font-size="10" text-anchor="end">'
        f"{v / 10**6:,.0f}</text>"
        f'<line x1="{left}" x2="{width - 8}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e5e7eb"/>'
        for v in (low, (low + high) // 2, high)
    )
    line = (
        f'<line x1="{left}" x2="{width - 8}" y1="{y(baseline):.1f}" y2="{y(baseline):.1f}" '
        f'stroke="#2563eb" stroke-width="2" stroke-dasharray="6 4"><title>基期日均 '
        f"{yuan(baseline)} 元</title></line>"
    )
    return (
        f'<svg id="daily-chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="活动期每日销售额与基期日均对比（万元）">{ticks}{bars}{line}{labels}</svg>'
        f'<p class="muted"><span style="color:#dc2626">■</span> 每日销售额（万元） '
        f'<span style="color:#2563eb">- -</span> 基期日均 {money(baseline)}</p>'
    )


def ranking(rows: list[dict[str, Any]], limit: int | None, unit: str) -> str:
    ranked = sorted(rows, key=lambda r: (-r["net_fen"], r["unit"]))[:limit]
    body = "".join(
        f"<tr><td>{n}</td><td>{escape(r['name'])}</td><td>{money(r['net_fen'])}</td>"
        f"<td>{yuan(r['net_fen'])}</td><td>{money(r['uplift_fen'])}</td>"
        f"<td>{pct(r['uplift_pct'])}</td><td>{r['activities']}</td><td>{r['policies']}</td></tr>"
        for n, r in enumerate(ranked, 1)
    )
    return (
        f'<div class="scroll"><table><tr><th>排名</th><th>{unit}</th><th>销售额</th>'
        "<th>精确金额（元）</th><th>拉动增量</th><th>增幅</th><th>活动</th><th>政策</th></tr>"
        f"{body}</table></div>"
    )


def coverage_note(figures: dict[str, Any]) -> str:
    """How many providers have delivered the window, and a provisional mark while
    any provider-day of it is missing (figures published before coverage was kept
    say nothing)."""
    coverage = figures.get("coverage")
    if not coverage:
        return ""
    note = (
        f'<p id="coverage" class="muted">数据截至 {coverage["to"]}，'
        f"{coverage['delivered']}/{coverage['providers']} 家机构已报送</p>"
    )
    missing = coverage["missing"]
    if not missing:
        return note
    days = sorted({d["day"] for d in missing})
    return (
        f'<p id="provisional" class="provisional"><b>初步数据</b>{len(missing)} 个机构日的数据'
        f"尚未报送（{escape('、'.join(d[5:] for d in days[:CHANGES_SHOWN]))}"
        f"{' 等' if len(days) > CHANGES_SHOWN else ''}），相关数据为初步统计，补报后将修订。</p>"
        + note
    )


def change_text(change: dict[str, Any]) -> str:
    measure = MEASURE_ZH.get(change["measure"], change["measure"])
    if change["change"] is None:
        delta = f"{change['old']} → {change['new']}"
    elif change["measure"] in MONEY:
        delta = ("+" if change["change"] >= 0 else "") + money(change["change"])
    elif change["measure"] == "uplift_pct":
        delta = f"{change['change']:+.2f} 个百分点"
    else:
        delta = f"{change['change']:+}"
    return f"{escape(change['name'])} {measure} {delta}"


def publication_list(publications: list[dict[str, Any]]) -> str:
    if not publications:
        return '<p class="muted">尚未正式发布；以上为实时统计数据。</p>'
    items = []
    for p in publications:
        changes = p["changes"]
        if changes is None:
            revised = "首次发布"
        elif not changes:
            revised = "数据与上次发布相同"
        else:
            ordered = sorted(changes, key=lambda c: LEVELS_FIRST.index(c["level"]))
            shown = "；".join(change_text(c) for c in ordered[:CHANGES_SHOWN])
            more = f" 等 {len(changes)} 项" if len(changes) > CHANGES_SHOWN else ""
            revised = f"较第 {p['number'] - 1} 次修订：{shown}{more}"
            late = sorted({d["day"] for d in p.get("late_arrivals", [])})
            if late:
                revised += f"（源于迟报数据：{escape('、'.join(day[5:] for day in late))}）"
        final = ' <span class="final">终报</span>' if p["final"] else ""
        note = f"：{escape(p['note'])}" if p["note"] else ""
        items.append(
            f'<li id="publication-{p["number"]}"><b>第 {p["number"]} 次发布</b>{final} '
            f'{local_time(p["published_at"])}{note}<br><span class="muted">{revised} · '
            f"SHA-256 {p['sha256'][:12]}…</span></li>"
        )
    return f"<ul>{''.join(items)}</ul>"


def render_page(data: dict[str, Any]) -> str:
    campaign, figures = data["campaign"], data["figures"]
    if data["live"]:
        status = "实时统计（尚未正式发布）"
    else:
        latest = data["publications"][0]
        status = f"第 {latest['number']} 次发布 · {local_time(latest['published_at'])}（北京时间）"
    title = f"{campaign['name']} · 成效发布"
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{STYLE}</style></head>
<body><header><h1>{escape(title)}</h1><p>{escape(campaign["slogan"])}</p>
<p id="status">{status}</p></header><main>
<section><h2>全国总体情况</h2>{coverage_note(figures)}{kpis(figures)}</section>
<section><h2>每日销售额与基期日均对比</h2>{chart(figures)}</section>
<section><h2>分省排名</h2>{ranking(figures["reports"]["province"]["rows"], None, "省份")}</section>
<section><h2>城市排名（前 {TOP_CITIES}）</h2>
{ranking(figures["reports"]["city"]["rows"], TOP_CITIES, "城市")}</section>
<section><h2>发布记录</h2>{publication_list(data["publications"])}</section>
<p class="muted">金额单位为万元或亿元，悬停可见精确到分的金额；基期为活动前同等天数。
数据以发布为准，后续发布可修订此前数据。</p>
</main></body></html>"""


async def _page(conn: AsyncConnection) -> bytes:
    return render_page(await public_page_data(conn, datetime.now(UTC))).encode()


@router.get("/", include_in_schema=False)
async def public_page(request: Request) -> HTMLResponse:
    body, max_age = await cached(request, "page", _page)
    return HTMLResponse(
        body, headers={"Cache-Control": f"public, max-age={max_age}", **PAGE_HEADERS}
    )
