"""payers_period, payer_periods: each enterprise's payer sketch over a whole
campaign window or baseline, with its estimate, so that a listing by enterprise
reads one estimate per enterprise; an index that lets that listing read its
page's enterprises only; the stored day-grain estimates recomputed as the
estimate of their registers (`store.sketches.estimate`).

The periods themselves are built by the payer compactor's first round after the
upgrade (`ingest.payers.keep_campaign_periods`): until then a listing merges
the day sketches, as before.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from store.sketches import estimate_of

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DAY_GRAINS = {"payers_day": ("day",), "payers_city_day": ("day", "city")}


def _bump_data_version(table: str) -> None:
    op.execute(
        f"CREATE TRIGGER {table}_bump_data_version "
        f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version()"
    )


def upgrade() -> None:
    op.create_table(
        "payers_period",
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("enterprise", sa.Text(), nullable=False),
        sa.Column("city", sa.Text(), nullable=False),
        sa.Column("sketch", sa.LargeBinary(), nullable=False),
        sa.Column("estimate", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "first_day", "last_day", "enterprise", "city", name=op.f("pk_payers_period")
        ),
        postgresql_with={"fillfactor": 50},
    )
    op.create_table(
        "payer_periods",
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("first_day", "last_day", name=op.f("pk_payer_periods")),
    )
    _bump_data_version("payers_period")
    _bump_data_version("payer_periods")
    op.create_index(
        op.f("ix_rollup_enterprise_day_enterprise_day"),
        "rollup_enterprise_day",
        ["enterprise", "day"],
    )
    bind = op.get_bind()
    for name, dims in DAY_GRAINS.items():
        key = ", ".join(dims)
        rows = bind.execute(sa.text(f"SELECT {key}, sketch FROM {name}")).mappings().all()
        for row in rows:
            bind.execute(
                sa.text(
                    f"UPDATE {name} SET estimate = :estimate WHERE "
                    + " AND ".join(f"{d} = :{d}" for d in dims)
                ),
                {**{d: row[d] for d in dims}, "estimate": estimate_of(bytes(row["sketch"]))},
            )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_rollup_enterprise_day_enterprise_day"), table_name="rollup_enterprise_day"
    )
    op.drop_table("payer_periods")
    op.drop_table("payers_period")
