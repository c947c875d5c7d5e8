"""The one settings class: nothing else in payfeed reads the environment."""

import os
import secrets
import threading
from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYFEED_", extra="ignore")

    home: Path = Path(".payfeed")
    database_url: str | None = None
    read_database_url: str | None = None
    """A streaming replica of `database_url` for dashboard and public reads
    (rollups, summaries, reports); unset: they read the primary."""
    kafka_bootstrap_servers: str | None = None
    kafka_topic: str = "payfeed.records"
    kafka_group: str = "payfeed"
    kafka_dlq_topic: str | None = None
    secret_key: str | None = None
    max_batch_bytes: int = 64 * 1024 * 1024
    max_batch_records: int = 100_000
    max_unpacked_bytes: int = 1 << 30
    large_bodies: int = 2
    """Bodies over 16 MB (or compressed) read at once per process; more wait."""
    pool_timeout: float = 10.0
    """Seconds a request waits for a database connection before its 503."""
    publish_every: str | None = None
    log_level: str = "INFO"

    def resolved_secret(self) -> bytes:
        """The HMAC key for payer references.

        Set explicitly in production; in embedded mode it is generated once and kept
        under `home`, so that a restart hashes the same payer to the same value.
        Processes starting at once on a new home (`serve --workers 2`) each write a
        key of their own aside and link it into place: the first link wins, and
        every process reads that one, whole.
        """
        if self.secret_key:
            return self.secret_key.encode()
        path = self.home / "secret.key"
        if not path.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            mine = path.with_name(f".secret.key.{os.getpid()}.{threading.get_ident()}")
            mine.write_text(secrets.token_hex(32))
            mine.chmod(0o600)
            try:
                os.link(mine, path)
            except FileExistsError:
                pass
            finally:
                mine.unlink()
        return path.read_text().strip().encode()


@lru_cache
def get_settings() -> Settings:
    return Settings()
