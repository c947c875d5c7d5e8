"""totals_city_day: the exact measures per city and day, kept by the writer like
the other rollups and filled here from `rollup_city_day`, so that the reads that
need no more than days, cities and provinces (the day-city dashboard, the
summary, the report, publications) read one row per city and day.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-28 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MEASURES = ("payment_count", "refund_count", "gross_fen", "refund_fen")


def upgrade() -> None:
    op.create_table(
        "totals_city_day",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("city", sa.Text(), nullable=False),
        *(sa.Column(m, sa.BigInteger(), nullable=False) for m in MEASURES),
        sa.PrimaryKeyConstraint("day", "city", name=op.f("pk_totals_city_day")),
        postgresql_with={"fillfactor": 50},
    )
    op.execute(
        "CREATE TRIGGER totals_city_day_bump_data_version "
        "AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON totals_city_day "
        "FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version()"
    )
    sums = ", ".join(f"sum({m})" for m in MEASURES)
    op.execute(
        f"INSERT INTO totals_city_day (day, city, {', '.join(MEASURES)}) "
        f"SELECT day, city, {sums} FROM rollup_city_day GROUP BY day, city"
    )


def downgrade() -> None:
    op.drop_table("totals_city_day")
