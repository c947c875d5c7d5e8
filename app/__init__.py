"""The HTTP edge (FastAPI) and the `payfeed` command line."""
