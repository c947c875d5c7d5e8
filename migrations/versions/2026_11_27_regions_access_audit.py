"""regions, access and audit: regional tokens, the report deadline, provincial
submissions and the audit trail.

Tokens gain a region (none: national; a province prefix; a city code), an expiry
and the time they were last used. Campaigns gain `report_due`, the day by which
provinces submit their reports (2023-10-15 for `2023`). Submissions and audit rows
are never updated or deleted: a trigger refuses both, as for publications.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 16:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = postgresql.TIMESTAMP(timezone=True)

REFUSE_SUBMISSION_CHANGE = """
CREATE FUNCTION submissions_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'submission % of province % for campaign % is immutable: submit again',
        OLD.number, OLD.province, OLD.campaign USING ERRCODE = 'restrict_violation';
END
$$
"""

REFUSE_AUDIT_CHANGE = """
CREATE FUNCTION audit_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit row % is append-only: it is never updated or deleted', OLD.id
        USING ERRCODE = 'restrict_violation';
END
$$
"""


def upgrade() -> None:
    op.add_column("tokens", sa.Column("region", sa.Text(), nullable=True))
    op.add_column("tokens", sa.Column("expires_at", TZ, nullable=True))
    op.add_column("tokens", sa.Column("last_used_at", TZ, nullable=True))
    op.add_column("campaigns", sa.Column("report_due", sa.Date(), nullable=True))
    op.execute("UPDATE campaigns SET report_due = DATE '2023-10-15' WHERE code = '2023'")
    op.create_table(
        "submissions",
        sa.Column("campaign", sa.Text(), nullable=False),
        sa.Column("province", sa.Text(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("submitted_at", TZ, nullable=False),
        sa.Column("submitted_by", sa.Text(), nullable=False),
        sa.Column("actor_token_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("body", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign"], ["campaigns.code"], name=op.f("fk_submissions_campaign_campaigns")
        ),
        sa.PrimaryKeyConstraint("campaign", "province", "number", name=op.f("pk_submissions")),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("at", TZ, server_default=sa.text("now()"), nullable=False),
        sa.Column("actor_token_id", sa.Integer(), nullable=True),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("region", sa.Text(), nullable=True),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit")),
    )
    op.create_index(op.f("ix_audit_at"), "audit", ["at"])
    op.create_index(op.f("ix_audit_action_at"), "audit", ["action", "at"])
    op.create_index(op.f("ix_audit_actor_token_id_at"), "audit", ["actor_token_id", "at"])
    op.execute(REFUSE_SUBMISSION_CHANGE)
    op.execute(
        "CREATE TRIGGER submissions_immutable BEFORE UPDATE OR DELETE ON submissions "
        "FOR EACH ROW EXECUTE FUNCTION submissions_are_immutable()"
    )
    op.execute(REFUSE_AUDIT_CHANGE)
    op.execute(
        "CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit "
        "FOR EACH ROW EXECUTE FUNCTION audit_is_append_only()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER audit_append_only ON audit")
    op.execute("DROP FUNCTION audit_is_append_only()")
    op.execute("DROP TRIGGER submissions_immutable ON submissions")
    op.execute("DROP FUNCTION submissions_are_immutable()")
    op.drop_index(op.f("ix_audit_actor_token_id_at"), table_name="audit")
    op.drop_index(op.f("ix_audit_action_at"), table_name="audit")
    op.drop_index(op.f("ix_audit_at"), table_name="audit")
    op.drop_table("audit")
    op.drop_table("submissions")
    op.drop_column("campaigns", "report_due")
    op.drop_column("tokens", "last_used_at")
    op.drop_column("tokens", "expires_at")
    op.drop_column("tokens", "region")
