"""quarantine digest: one row per held record, however often it arrives.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 08:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("quarantine", sa.Column("digest", sa.LargeBinary(), nullable=True))
    op.create_index(
        op.f("ix_quarantine_provider_digest"), "quarantine", ["provider", "digest"], unique=True
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_quarantine_provider_digest"), table_name="quarantine")
    op.drop_column("quarantine", "digest")
