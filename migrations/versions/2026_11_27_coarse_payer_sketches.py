"""payers_day, payers_city_day: payer sketches at the grains dashboards read most,
with their estimates, filled from the city-grain sketches.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from datasketches import hll_sketch, hll_union

from store.sketches import LG_K, TARGET

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GRAINS = {"payers_day": ("day",), "payers_city_day": ("day", "city")}


def upgrade() -> None:
    for name, dims in GRAINS.items():
        op.create_table(
            name,
            sa.Column("day", sa.Date(), nullable=False),
            *(sa.Column(d, sa.Text(), nullable=False) for d in dims[1:]),
            sa.Column("sketch", sa.LargeBinary(), nullable=False),
            sa.Column("estimate", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint(*dims, name=op.f(f"pk_{name}")),
            postgresql_with={"fillfactor": 50},
        )
        op.execute(
            f"CREATE TRIGGER {name}_bump_data_version "
            f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {name} "
            "FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version()"
        )
    # Payers already counted at the city grain, merged into the new grains.
    bind = op.get_bind()
    for name, dims in GRAINS.items():
        key = ", ".join(dims)
        rows = bind.execute(
            sa.text(
                f"SELECT {key}, array_agg(sketch) AS sketches FROM rollup_city_day_payers "
                f"GROUP BY {key}"
            )
        ).mappings()
        for row in rows:
            union = hll_union(LG_K)
            for sketch in row["sketches"]:
                union.update(hll_sketch.deserialize(bytes(sketch)))
            merged = union.get_result(TARGET)
            bind.execute(
                sa.text(
                    f"INSERT INTO {name} ({key}, sketch, estimate) "
                    f"VALUES ({', '.join(':' + d for d in dims)}, :sketch, :estimate)"
                ),
                {
                    **{d: row[d] for d in dims},
                    "sketch": bytes(merged.serialize_compact()),
                    "estimate": int(round(merged.get_estimate())),
                },
            )


def downgrade() -> None:
    for name in GRAINS:
        op.drop_table(name)
