"""The demo campaign and the sample provider files it (and the benches) feed
through the real adapters."""
