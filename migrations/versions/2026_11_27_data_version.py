"""data_version: a counter bumped by every statement that changes what the
dashboards read, so that their answers can be cached and revalidated by it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 09:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SLOTS = 64
"""Rows the counter is striped over (by backend pid): concurrent writers bump
different rows instead of queueing on one; readers add them up."""

READ_TABLES = (
    "rollup_city_day",
    "rollup_enterprise_day",
    "rollup_city_day_payers",
    "rollup_enterprise_day_payers",
    "campaigns",
    "campaign_cities",
    "enterprises",
    "activities",
    "policies",
    "publications",
)

BUMP = f"""
CREATE FUNCTION bump_data_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO data_version AS v (slot, version) VALUES (pg_backend_pid() % {SLOTS}, 1)
    ON CONFLICT (slot) DO UPDATE SET version = v.version + 1;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.execute(
        "CREATE TABLE data_version (slot integer CONSTRAINT pk_data_version PRIMARY KEY, "
        "version bigint NOT NULL) WITH (fillfactor = 50)"
    )
    op.execute(BUMP)
    for table in READ_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_bump_data_version "
            f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version()"
        )


def downgrade() -> None:
    for table in READ_TABLES:
        op.execute(f"DROP TRIGGER {table}_bump_data_version ON {table}")
    op.execute("DROP FUNCTION bump_data_version()")
    op.execute("DROP TABLE data_version")
