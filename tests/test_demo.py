"""The demo's regional tokens (`make run`): a provincial viewer and a city admin,
whose printed examples work as printed and stay the same across restarts."""

import shlex
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from demo.campaign import load_demo
from demo.tokens import demo_tokens, regional_examples
from store.settings import Settings


async def test_demo_regional_tokens_work_as_printed(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings, viewer: dict[str, str]
) -> None:
    assert (await load_demo(engine, settings)).startswith("demo loaded: 36 enterprises")
    tokens = await demo_tokens(engine, settings)
    assert await demo_tokens(engine, settings) == tokens
    lines = regional_examples("http://payfeed", tokens)
    assert len(lines) == 2
    national = (await client.get("/v1/reports/2023?level=city", headers=viewer)).json()
    answers: list[Any] = []
    for line in lines:
        words = shlex.split(line)
        words = words[words.index("curl") :]
        url = next(w for w in words if w.startswith("http://payfeed"))
        pairs = zip(words[1:], words[:-1], strict=True)
        headers = dict(w.split(": ", 1) for w, before in pairs if before == "-H")
        body = words[words.index("-d") + 1] if "-d" in words else None
        method = "POST" if "-X" in words else "GET"
        answers.append(await client.request(method, url, content=body, headers=headers))
    report, registered = answers
    assert report.status_code == 200, report.text
    assert [row["unit"] for row in report.json()["rows"]] == ["330100", "330200"]
    assert report.json()["rows"] == [r for r in national["rows"] if r["unit"][:2] == "33"]
    assert registered.status_code == 200 and registered.json() == {"registered": 1}
