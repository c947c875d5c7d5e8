"""The write path: provider adapters, normalisation, the batch writer, rollups and
payer sketches, and the drivers that feed them (HTTP batches, Kafka, backfill,
quarantine replay).

Knows nothing of HTTP; functions take a connection and never commit on their own.
Imports `store` and `schemas`, never `campaign`.
"""
