"""The campaign's read and publish side: campaigns and their windows, the
registry, rollup queries, reports, publications and the public figures.

Reads what `ingest` wrote; imports `store` and `schemas`, never `ingest`.
"""
