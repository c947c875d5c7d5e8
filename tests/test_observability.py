"""/metrics counts records by provider and outcome, batches, the quarantine and
the pool; logs are JSON lines with the batch id and provider."""

import logging
from typing import Any

import httpx
import orjson
import pytest

from app.logs import JsonFormatter
from tests.factories import enterprise_with_account, push, record


def sample(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}}" if labels else f"{name} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_metrics_after_a_batch(
    client: httpx.AsyncClient, admin: dict[str, str], provider_token: Any
) -> None:
    cmb = await provider_token("obs")
    await enterprise_with_account(client, admin, provider="obs", merchant_id="M1")
    before = (await client.get("/metrics")).text
    body = [record("T1"), record("T2"), record("T1"), record("X", merchant_id="NOPE")]
    assert (await push(client, cmb, "b1", body)).status_code == 200
    after = (await client.get("/metrics")).text

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    records = "payfeed_records_total"
    assert delta(records, provider="obs", outcome="inserted", source="http") == 2
    assert delta(records, provider="obs", outcome="duplicate", source="http") == 1
    assert delta(records, provider="obs", outcome="unknown_merchant", source="http") == 1
    assert delta("payfeed_batch_records_count", source="http") == 1
    assert delta("payfeed_batch_records_sum", source="http") == 4
    assert delta("payfeed_batch_seconds_count", source="http") == 1
    assert sample(after, "payfeed_quarantine_records", provider="obs", code="unknown_merchant") == 1
    assert sample(after, "payfeed_db_pool_connections", state="size") >= 1


def test_json_logs_carry_batch_id_and_provider(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("ingest.batches")
    with caplog.at_level(logging.INFO, logger="ingest.batches"):
        logger.info("batch stored", extra={"batch_id": "b-1", "provider": "cmb", "inserted": 3})
        logger.warning("card 4111111111111111 seen")
    stored, card = (orjson.loads(JsonFormatter().format(r)) for r in caplog.records)
    assert stored["message"] == "batch stored" and stored["level"] == "info"
    assert (stored["batch_id"], stored["provider"], stored["inserted"]) == ("b-1", "cmb", 3)
    assert stored["logger"] == "ingest.batches" and stored["ts"].endswith("+00:00")
    assert card["message"] == "card 411111******1111 seen"
