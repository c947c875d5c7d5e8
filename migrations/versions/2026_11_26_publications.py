"""publications: numbered, immutable snapshots of a campaign's report.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFUSE_CHANGE = """
CREATE FUNCTION publications_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'publication % of campaign % is immutable: publish a revision instead',
        OLD.number, OLD.campaign USING ERRCODE = 'restrict_violation';
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "publications",
        sa.Column("campaign", sa.Text(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("published_at", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("published_by", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("body", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign"], ["campaigns.code"], name=op.f("fk_publications_campaign_campaigns")
        ),
        sa.PrimaryKeyConstraint("campaign", "number", name=op.f("pk_publications")),
    )
    op.create_index(
        "uq_publications_final",
        "publications",
        ["campaign"],
        unique=True,
        postgresql_where=sa.text("final"),
    )
    op.execute(REFUSE_CHANGE)
    op.execute(
        "CREATE TRIGGER publications_immutable BEFORE UPDATE OR DELETE ON publications "
        "FOR EACH ROW EXECUTE FUNCTION publications_are_immutable()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER publications_immutable ON publications")
    op.execute("DROP FUNCTION publications_are_immutable()")
    op.drop_index("uq_publications_final", table_name="publications")
    op.drop_table("publications")
