"""The SQLAlchemy tables: the registry, the records, their rollups and the ops trail.

Constraint names follow one convention so that migrations stay stable.
Rollups come at three grains: `totals_city_day` answers every query that needs
no more than the day, the city and the province (a 30-day national dashboard
reads its 3,000 rows of 100 cities instead of their 28,000 by category, channel
and provider, as `payers_city_day` does for payers); `rollup_city_day` every
other query that neither groups nor filters by enterprise;
`rollup_enterprise_day` the rest. Its index by enterprise and day
lets a page of a listing by enterprise group its own enterprises' rows and stop
(1,000 of 10,000 enterprises over 20 days: 96 ms to group every row, 11 ms
through the index); no measure is in it, so rollup updates stay HOT.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    Time,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

TZ = TIMESTAMP(timezone=True)

campaigns = Table(
    "campaigns",
    metadata,
    Column("code", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("slogan", Text, nullable=False, server_default=""),
    Column("first_day", Date, nullable=False),
    Column("last_day", Date, nullable=False),
    Column("baseline_first_day", Date, nullable=False),
    Column("baseline_last_day", Date, nullable=False),
    Column("time_zone", Text, nullable=False, server_default="Asia/Shanghai"),
    Column("report_due", Date, nullable=True),
)
"""`report_due`: the last day on which a province's submission is on time."""

campaign_cities = Table(
    "campaign_cities",
    metadata,
    Column("campaign", Text, ForeignKey("campaigns.code"), primary_key=True),
    Column("city", Text, primary_key=True),
    Column("last_day", Date, nullable=True),
)

enterprises = Table(
    "enterprises",
    metadata,
    Column("uscc", Text, primary_key=True),
    Column("campaign", Text, ForeignKey("campaigns.code"), nullable=False),
    Column("name", Text, nullable=False),
    Column("city", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("category", Text, nullable=False),
    Index(None, "campaign", "city"),
)

merchant_accounts = Table(
    "merchant_accounts",
    metadata,
    Column("provider", Text, primary_key=True),
    Column("merchant_id", Text, primary_key=True),
    Column("uscc", Text, ForeignKey("enterprises.uscc"), nullable=False),
    Column("city", Text, nullable=True),
    Column("category", Text, nullable=True),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("token_hash", LargeBinary, nullable=False, unique=True),
    Column("role", Text, nullable=False),
    Column("provider", Text, nullable=True),
    Column("created_at", TZ, nullable=False, server_default=func.now()),
    Column("revoked_at", TZ, nullable=True),
    Column("region", Text, nullable=True),
    Column("expires_at", TZ, nullable=True),
    Column("last_used_at", TZ, nullable=True),
)
"""`region`: none (national), a province prefix or a city code (viewer and admin
tokens only). An expired or revoked token authenticates nobody."""

batches = Table(
    "batches",
    metadata,
    Column("batch_id", Text, primary_key=True),
    Column("provider", Text, nullable=False),
    Column("digest", LargeBinary, nullable=False),
    Column("answer", JSONB, nullable=False),
    Column("created_at", TZ, nullable=False, server_default=func.now()),
)

records = Table(
    "records",
    metadata,
    Column("provider", Text, primary_key=True),
    Column("txn_id", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("occurred_at", TZ, nullable=False),
    Column("day", Date, nullable=False),
    Column("merchant_id", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("mcc", Text, nullable=True),
    Column("original_txn_id", Text, nullable=True),
    Column("payer_hash", LargeBinary, nullable=True),
    Column("enterprise", Text, nullable=False),
    Column("city", Text, nullable=False),
    Column("category", Text, nullable=False),
    Column("ingested_at", TZ, nullable=False, server_default=func.now()),
    Index(None, "day"),
)

ROLLUP_MEASURES = ("payment_count", "refund_count", "gross_fen", "refund_fen")


def _rollup_table(name: str, *dims: str) -> Table:
    """Rollup rows are updated in place by every batch: half-empty pages let
    PostgreSQL keep those updates HOT (no index maintenance)."""
    return Table(
        name,
        metadata,
        Column("day", Date, primary_key=True),
        *(Column(dim, Text, primary_key=True) for dim in dims),
        Column("payment_count", BigInteger, nullable=False),
        Column("refund_count", BigInteger, nullable=False),
        Column("gross_fen", BigInteger, nullable=False),
        Column("refund_fen", BigInteger, nullable=False),
        postgresql_with={"fillfactor": 50},
    )


rollup_city_day = _rollup_table("rollup_city_day", "city", "category", "channel", "provider")
rollup_enterprise_day = _rollup_table(
    "rollup_enterprise_day", "city", "enterprise", "category", "channel", "provider"
)
Index(None, rollup_enterprise_day.c.enterprise, rollup_enterprise_day.c.day)
totals_city_day = _rollup_table("totals_city_day", "city")

totals_enterprise_period = Table(
    "totals_enterprise_period",
    metadata,
    Column("first_day", Date, primary_key=True),
    Column("last_day", Date, primary_key=True),
    Column("enterprise", Text, primary_key=True),
    Column("city", Text, primary_key=True),
    *(Column(m, BigInteger, nullable=False) for m in ROLLUP_MEASURES),
    postgresql_with={"fillfactor": 50},
)
"""Each enterprise's exact measures over every period in `total_periods` (the
campaigns' windows and baselines: `store.periods`), kept by the writer in the
batch's transaction: a listing by enterprise over such a period reads one row
per enterprise (1,000 for a page) instead of one per enterprise and day, and
the summary counts the window's active enterprises from it."""

total_periods = Table(
    "total_periods",
    metadata,
    Column("first_day", Date, primary_key=True),
    Column("last_day", Date, primary_key=True),
)
"""The periods `totals_enterprise_period` is kept for: a period listed here has
every enterprise's exact measures, none other has any."""

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("provider", Text, nullable=False),
    Column("code", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("txn_id", Text, nullable=True),
    Column("record", JSONB, nullable=False),
    Column("batch_id", Text, nullable=True),
    Column("source", JSONB, nullable=True),
    Column("created_at", TZ, nullable=False, server_default=func.now()),
    Column("digest", LargeBinary, nullable=True),
    Index(None, "provider", "code"),
    Index(None, "provider", "digest", unique=True),
)
"""`digest` (SHA-256 of the held record as stored) keeps one row per held record
when it arrives again (a provider's retry, a Kafka re-read after a crash)."""

quarantine_actions = Table(
    "quarantine_actions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("action", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("filters", JSONB, nullable=False),
    Column("count", Integer, nullable=False),
    Column("at", TZ, nullable=False, server_default=func.now()),
)

activities = Table(
    "activities",
    metadata,
    Column("campaign", Text, ForeignKey("campaigns.code"), primary_key=True),
    Column("city", Text, primary_key=True),
    Column("title", Text, primary_key=True),
    Column("theme", Text, nullable=False),
    Column("first_day", Date, nullable=False),
    Column("last_day", Date, nullable=False),
    Column("sessions", Integer, nullable=False),
)

policies = Table(
    "policies",
    metadata,
    Column("campaign", Text, ForeignKey("campaigns.code"), primary_key=True),
    Column("unit", Text, primary_key=True),
    Column("title", Text, primary_key=True),
    Column("issued_on", Date, nullable=False),
)


SKETCH_STORAGE = {"fillfactor": 50, "toast_tuple_target": 8160}
"""Sketch rows stay in their own half-empty pages, never in TOAST: a full sketch
(2,090 bytes) would otherwise be stored out of line and every update would leave
a dead TOAST value behind (migration 0014 says what that cost)."""


def _payers_table(rollup: Table) -> Table:
    """HyperLogLog sketches of the distinct payer hashes of `rollup`'s rows, at the
    same key, so that the rollup row's lock also guards its sketch. Updated in
    place by every batch, like the rollups: half-empty pages keep updates HOT."""
    return Table(
        f"{rollup.name}_payers",
        metadata,
        *(Column(c.name, c.type, primary_key=True) for c in rollup.primary_key.columns),
        Column("sketch", LargeBinary, nullable=False),
        postgresql_with=SKETCH_STORAGE,
    )


rollup_city_day_payers = _payers_table(rollup_city_day)
rollup_enterprise_day_payers = _payers_table(rollup_enterprise_day)


def _coarse_payers_table(name: str, *dims: str) -> Table:
    """Payer sketches at a grain coarser than any rollup's, with their estimate:
    the grains dashboards read most (the day; the city and day), so that a summary
    merges one sketch per day and a row per city and day reads its count as a
    number. Kept by the payer compactor only."""
    return Table(
        name,
        metadata,
        Column("day", Date, primary_key=True),
        *(Column(dim, Text, primary_key=True) for dim in dims),
        Column("sketch", LargeBinary, nullable=False),
        Column("estimate", BigInteger, nullable=False),
        postgresql_with=SKETCH_STORAGE,
    )


payers_day = _coarse_payers_table("payers_day")
payers_city_day = _coarse_payers_table("payers_city_day", "city")

payers_period = Table(
    "payers_period",
    metadata,
    Column("first_day", Date, primary_key=True),
    Column("last_day", Date, primary_key=True),
    Column("enterprise", Text, primary_key=True),
    Column("city", Text, primary_key=True),
    Column("sketch", LargeBinary, nullable=False),
    Column("estimate", BigInteger, nullable=False),
    postgresql_with=SKETCH_STORAGE,
)
"""Payer sketches per enterprise (and city) over a whole period, with their
estimates: the union of the enterprise's day sketches over `first_day`..`last_day`,
kept for the periods in `payer_periods` only. A listing by enterprise over such a
period reads one estimate per enterprise instead of merging one sketch per
enterprise and day (30,000 per page of 1,000). Kept by the payer compactor."""

payer_periods = Table(
    "payer_periods",
    metadata,
    Column("first_day", Date, primary_key=True),
    Column("last_day", Date, primary_key=True),
)
"""The periods `payers_period` is kept for (the campaigns' windows and
baselines): a period listed here has every enterprise's sketch, none other has any."""

payer_queue = Table(
    "payer_queue",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("queued_at", TZ, nullable=False, server_default=func.now()),
    Column("payers", LargeBinary, nullable=False),
)
"""A batch's payer hashes with their rollup keys (Arrow IPC), written in the
batch's transaction and deleted once merged into the sketches."""

backfill_files = Table(
    "backfill_files",
    metadata,
    Column("digest", LargeBinary, primary_key=True),
    Column("provider", Text, primary_key=True),
    Column("format", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("rows_done", BigInteger, nullable=False),
    Column("summary", JSONB, nullable=False),
    Column("completed_at", TZ, nullable=True),
)
"""A file backfill has read (by content digest): the data rows committed so far,
so a rerun resumes after them, and a file read to its end is skipped."""

data_version = Table(
    "data_version",
    metadata,
    Column("slot", Integer, primary_key=True),
    Column("version", BigInteger, nullable=False),
    postgresql_with={"fillfactor": 50},
)
"""A counter that every statement changing what dashboards read bumps (statement
triggers on the rollup, sketch, registry, provider, campaign and calendar
tables), striped over
rows by backend so that concurrent writers do not queue on one row; its sum is
the data version (`store.data_version`)."""

publications = Table(
    "publications",
    metadata,
    Column("campaign", Text, ForeignKey("campaigns.code"), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("published_at", TZ, nullable=False),
    Column("published_by", Text, nullable=False),
    Column("note", Text, nullable=False),
    Column("final", Boolean, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("body", JSONB, nullable=False),
    Index("uq_publications_final", "campaign", unique=True, postgresql_where=text("final")),
)
"""A campaign's report as published: numbered per campaign, never updated or
deleted (a trigger refuses both), `sha256` over the canonical JSON of `body`."""

submissions = Table(
    "submissions",
    metadata,
    Column("campaign", Text, ForeignKey("campaigns.code"), primary_key=True),
    Column("province", Text, primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("submitted_at", TZ, nullable=False),
    Column("submitted_by", Text, nullable=False),
    Column("actor_token_id", Integer, nullable=True),
    Column("note", Text, nullable=False),
    Column("late", Boolean, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("body", JSONB, nullable=False),
)
"""A province's report as submitted (报送): numbered per campaign and province,
never updated or deleted (a trigger refuses both), `sha256` over the canonical
JSON of `body`."""

audit = Table(
    "audit",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("at", TZ, nullable=False, server_default=func.now()),
    Column("actor_token_id", Integer, nullable=True),
    Column("role", Text, nullable=False),
    Column("region", Text, nullable=True),
    Column("action", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("count", BigInteger, nullable=False),
    Index(None, "at"),
    Index(None, "action", "at"),
    Index(None, "actor_token_id", "at"),
)
"""Every change made through payfeed, one row per change: who (token, role,
region; the command line is role `cli`), what, on what, how many rows. Append-only
(a trigger refuses updates and deletes)."""

providers = Table(
    "providers",
    metadata,
    Column("provider", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("delivery", Text, nullable=False),
    Column("due", Time, nullable=False),
)
"""Registered providers (SPEC section 10). Records, tokens and merchant accounts
name providers without a foreign key: an unregistered provider keeps working and
coverage shows it as unregistered."""

feed_days = Table(
    "feed_days",
    metadata,
    Column("provider", Text, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("payment_count", BigInteger, nullable=False),
    Column("refund_count", BigInteger, nullable=False),
    Column("gross_fen", BigInteger, nullable=False),
    Column("refund_fen", BigInteger, nullable=False),
    Column("batches", Integer, nullable=False),
    Column("first_arrival", TZ, nullable=False),
    Column("last_arrival", TZ, nullable=False),
    Index(None, "day"),
    postgresql_with={"fillfactor": 50},
)
"""The delivery calendar: per provider and local day, the records stored, the
write transactions (batches, file chunks, polls) that stored them and when the
first and last of them arrived (their records' `ingested_at`). Kept by the writer
in the batch's transaction, so it always equals a recount of the records."""

feed_files = Table(
    "feed_files",
    metadata,
    Column("provider", Text, primary_key=True),
    Column("source", Text, primary_key=True),
    Column("declared", JSONB, nullable=True),
    Column("read", JSONB, nullable=False),
    Column("received", BigInteger, nullable=False),
    Column("stored", JSONB, nullable=False),
    Column("first_day", Date, nullable=True),
    Column("last_day", Date, nullable=True),
    Column("first_arrival", TZ, nullable=False),
    Column("last_arrival", TZ, nullable=False),
)
"""Every file or batch whose format has control totals (`source`: `batch:<id>`
or `file:<path>`): what it declared, what was read from its rows, how many
records it held and which of them are stored (inserted, or duplicates of stored
records), summed over a backfilled file's chunks."""
