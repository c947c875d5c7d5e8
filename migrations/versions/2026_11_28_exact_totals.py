"""totals_city_day, totals_enterprise_period and total_periods: exact measures
at the grains dashboards read, kept by the writer like the other rollups — per
city and day, and per enterprise over every campaign window and baseline (the
periods listed in total_periods) — so that the day-city dashboard, the summary,
the report and a listing by enterprise read one row per city and day or per
enterprise. Both are filled here from the rollups.

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
SUMS = ", ".join(f"sum({m})" for m in MEASURES)
PERIODS = """
SELECT first_day, last_day FROM campaigns
UNION SELECT baseline_first_day, baseline_last_day FROM campaigns
"""


def _create(name: str, *keys: str) -> None:
    op.create_table(
        name,
        *(sa.Column(k, sa.Date() if k.endswith("day") else sa.Text(), nullable=False) for k in keys),
        *(sa.Column(m, sa.BigInteger(), nullable=False) for m in MEASURES),
        sa.PrimaryKeyConstraint(*keys, name=op.f(f"pk_{name}")),
        postgresql_with={"fillfactor": 50},
    )
    op.execute(
        f"CREATE TRIGGER {name}_bump_data_version "
        f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {name} "
        "FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version()"
    )


def upgrade() -> None:
    _create("totals_city_day", "day", "city")
    op.execute(
        f"INSERT INTO totals_city_day (day, city, {', '.join(MEASURES)}) "
        f"SELECT day, city, {SUMS} FROM rollup_city_day GROUP BY day, city"
    )
    _create("totals_enterprise_period", "first_day", "last_day", "enterprise", "city")
    op.create_table(
        "total_periods",
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("first_day", "last_day", name=op.f("pk_total_periods")),
    )
    op.execute(
        "CREATE TRIGGER total_periods_bump_data_version "
        "AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON total_periods "
        "FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version()"
    )
    op.execute(f"INSERT INTO total_periods {PERIODS}")
    op.execute(
        "INSERT INTO totals_enterprise_period "
        f"(first_day, last_day, enterprise, city, {', '.join(MEASURES)}) "
        f"SELECT p.first_day, p.last_day, r.enterprise, r.city, {SUMS} "
        "FROM rollup_enterprise_day r JOIN total_periods p "
        "ON r.day BETWEEN p.first_day AND p.last_day "
        "GROUP BY p.first_day, p.last_day, r.enterprise, r.city"
    )


def downgrade() -> None:
    op.drop_table("total_periods")
    op.drop_table("totals_enterprise_period")
    op.drop_table("totals_city_day")
