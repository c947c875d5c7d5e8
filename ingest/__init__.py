"""The pipeline: adapters, normalisation, the batch writer, rollups and the registry.

Knows nothing of HTTP; functions take a connection and never commit on their own.
"""
