"""feed calendar: registered providers, what each delivered per local day, and
the files and batches that declared control totals. Coverage travels with the
dashboards' answers, so what it reads bumps the data version (0006) like them.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27 16:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = postgresql.TIMESTAMP(timezone=True)
COVERAGE_TABLES = ("providers", "feed_days", "merchant_accounts")
"""What coverage reads beside the data version's tables already: the registered
providers, the calendar, and the merchant accounts that name unregistered ones."""


def upgrade() -> None:
    op.create_table(
        "providers",
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("delivery", sa.Text(), nullable=False),
        sa.Column("due", sa.Time(), nullable=False),
        sa.PrimaryKeyConstraint("provider", name=op.f("pk_providers")),
    )
    op.create_table(
        "feed_days",
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("payment_count", sa.BigInteger(), nullable=False),
        sa.Column("refund_count", sa.BigInteger(), nullable=False),
        sa.Column("gross_fen", sa.BigInteger(), nullable=False),
        sa.Column("refund_fen", sa.BigInteger(), nullable=False),
        sa.Column("batches", sa.Integer(), nullable=False),
        sa.Column("first_arrival", TZ, nullable=False),
        sa.Column("last_arrival", TZ, nullable=False),
        sa.PrimaryKeyConstraint("provider", "day", name=op.f("pk_feed_days")),
        postgresql_with={"fillfactor": 50},
    )
    op.create_index(op.f("ix_feed_days_day"), "feed_days", ["day"])
    op.create_table(
        "feed_files",
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("declared", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("read", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("received", sa.BigInteger(), nullable=False),
        sa.Column("stored", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=True),
        sa.Column("last_day", sa.Date(), nullable=True),
        sa.Column("first_arrival", TZ, nullable=False),
        sa.Column("last_arrival", TZ, nullable=False),
        sa.PrimaryKeyConstraint("provider", "source", name=op.f("pk_feed_files")),
    )
    op.execute(
        "INSERT INTO feed_days (provider, day, payment_count, refund_count, gross_fen, "
        "refund_fen, batches, first_arrival, last_arrival) "
        "SELECT provider, day, count(*) FILTER (WHERE kind = 'payment'), "
        "count(*) FILTER (WHERE kind = 'refund'), "
        "coalesce(sum(amount_fen) FILTER (WHERE kind = 'payment'), 0), "
        "coalesce(sum(amount_fen) FILTER (WHERE kind = 'refund'), 0), "
        "count(DISTINCT ingested_at), min(ingested_at), max(ingested_at) "
        "FROM records GROUP BY provider, day"
    )
    for table in COVERAGE_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_bump_data_version "
            f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version()"
        )


def downgrade() -> None:
    op.execute("DROP TRIGGER merchant_accounts_bump_data_version ON merchant_accounts")
    op.drop_table("feed_files")
    op.drop_index(op.f("ix_feed_days_day"), table_name="feed_days")
    op.drop_table("feed_days")
    op.drop_table("providers")
