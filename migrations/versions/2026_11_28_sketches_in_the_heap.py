"""Payer sketches stay in their table's own pages instead of TOAST.

A full sketch is 2,090 bytes, so its row passed PostgreSQL's 2 KB threshold and
the sketch went out of line: every update of it by the payer compactor wrote a
new TOAST value and left the old one for autovacuum. At 100 M records in
`bench/scale.py`'s time order `payers_period`'s TOAST held 20 GB for 10,000 live
sketches (20 MB), and vacuuming it took minutes while the compactor went on
writing. With `toast_tuple_target` at its largest no sketch row is toasted: an
update is a heap-only tuple in the same page (fillfactor 50 leaves the room),
and the page prunes the old one itself.

Sketches already out of line move into the heap on their next update; the
space their TOAST took is given back by `VACUUM FULL` of the table.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-28 05:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SKETCH_TABLES = (
    "rollup_city_day_payers",
    "rollup_enterprise_day_payers",
    "payers_day",
    "payers_city_day",
    "payers_period",
)


def upgrade() -> None:
    for table in SKETCH_TABLES:
        op.execute(f"ALTER TABLE {table} SET (toast_tuple_target = 8160)")


def downgrade() -> None:
    for table in SKETCH_TABLES:
        op.execute(f"ALTER TABLE {table} RESET (toast_tuple_target)")
