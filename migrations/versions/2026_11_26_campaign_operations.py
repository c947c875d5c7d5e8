"""campaign operations: activities, policies, payer sketches of the rollups.

Activities and policies are registered per campaign (identified by city and title,
and by unit and title). Each rollup grain gets a table of HyperLogLog sketches of
its rows' distinct payers, keyed exactly as the rollup.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 07:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('activities',
    sa.Column('campaign', sa.Text(), nullable=False),
    sa.Column('city', sa.Text(), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('theme', sa.Text(), nullable=False),
    sa.Column('first_day', sa.Date(), nullable=False),
    sa.Column('last_day', sa.Date(), nullable=False),
    sa.Column('sessions', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['campaign'], ['campaigns.code'], name=op.f('fk_activities_campaign_campaigns')),
    sa.PrimaryKeyConstraint('campaign', 'city', 'title', name=op.f('pk_activities'))
    )
    op.create_table('policies',
    sa.Column('campaign', sa.Text(), nullable=False),
    sa.Column('unit', sa.Text(), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('issued_on', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['campaign'], ['campaigns.code'], name=op.f('fk_policies_campaign_campaigns')),
    sa.PrimaryKeyConstraint('campaign', 'unit', 'title', name=op.f('pk_policies'))
    )
    op.create_table('rollup_city_day_payers',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('city', sa.Text(), nullable=False),
    sa.Column('category', sa.Text(), nullable=False),
    sa.Column('channel', sa.Text(), nullable=False),
    sa.Column('provider', sa.Text(), nullable=False),
    sa.Column('sketch', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'city', 'category', 'channel', 'provider', name=op.f('pk_rollup_city_day_payers')),
    postgresql_with={'fillfactor': 50},
    )
    op.create_table('rollup_enterprise_day_payers',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('city', sa.Text(), nullable=False),
    sa.Column('enterprise', sa.Text(), nullable=False),
    sa.Column('category', sa.Text(), nullable=False),
    sa.Column('channel', sa.Text(), nullable=False),
    sa.Column('provider', sa.Text(), nullable=False),
    sa.Column('sketch', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'city', 'enterprise', 'category', 'channel', 'provider', name=op.f('pk_rollup_enterprise_day_payers')),
    postgresql_with={'fillfactor': 50},
    )


def downgrade() -> None:
    op.drop_table('rollup_enterprise_day_payers')
    op.drop_table('rollup_city_day_payers')
    op.drop_table('policies')
    op.drop_table('activities')
