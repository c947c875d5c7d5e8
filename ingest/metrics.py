"""Prometheus metrics, module-level so that every path into payfeed counts into
the same series and `/metrics` (or `payfeed consume --metrics-port`) shows them."""

from prometheus_client import Counter, Gauge, Histogram

RECORDS = Counter(
    "payfeed_records",
    "Records received, by provider, per-record outcome and source (http, kafka, backfill, replay)",
    ["provider", "outcome", "source"],
)

KAFKA_BATCH_SECONDS = Histogram(
    "payfeed_kafka_batch_seconds",
    "Time from a poll's records in hand to their offsets committed",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

KAFKA_LAG = Gauge(
    "payfeed_kafka_lag",
    "Messages not yet consumed: the partition's high watermark minus the consumer position",
    ["topic", "partition"],
)

BATCH_RECORDS = Histogram(
    "payfeed_batch_records",
    "Records per batch (HTTP batch, a provider's part of a Kafka poll, backfill chunk, "
    "replay chunk), by source",
    ["source"],
    buckets=(1, 10, 100, 1_000, 10_000, 100_000, 1_000_000),
)

BATCH_SECONDS = Histogram(
    "payfeed_batch_seconds",
    "Time to read, normalise and write one batch, before its commit, by source",
    ["source"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

QUARANTINE_RECORDS = Gauge(
    "payfeed_quarantine_records",
    "Records held in the quarantine, by provider and code (read at scrape time)",
    ["provider", "code"],
)

DB_POOL_CONNECTIONS = Gauge(
    "payfeed_db_pool_connections",
    "This process's database connections: checked_out, idle, overflow, size",
    ["state"],
)

FAILED_BATCHES = Counter(
    "payfeed_failed_batches",
    "Batches set aside because storing them failed for a reason a retry would not cure "
    "(their messages dead-lettered), by source and error type",
    ["source", "error"],
)

FEED_DAYS = Gauge(
    "payfeed_feed_days",
    "Provider-days of the running campaign's window up to today, by provider and state "
    "(pending, missing, suspect, complete; read at scrape time)",
    ["provider", "state"],
)
