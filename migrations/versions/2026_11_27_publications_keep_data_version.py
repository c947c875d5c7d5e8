"""publications no longer bump data_version: a publication is written at
REPEATABLE READ, where bumping a counter row that a concurrent batch bumped
too fails the publication with a serialization error. No answer cached by data
version reads the publications (the public summary has its own cache).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 18:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DROP TRIGGER publications_bump_data_version ON publications")


def downgrade() -> None:
    op.execute(
        "CREATE TRIGGER publications_bump_data_version "
        "AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON publications "
        "FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version()"
    )
