"""core schema: registry, records, rollups, batches, tokens, quarantine.

Also creates the default campaign 2023 with the notice's dates, so that a registration
without a campaign has one to belong to from the first start.

Revision ID: 0001
Revises: 
Create Date: 2026-11-26 06:54:18.191498
"""

from collections.abc import Sequence
from datetime import date

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('batches',
    sa.Column('batch_id', sa.Text(), nullable=False),
    sa.Column('provider', sa.Text(), nullable=False),
    sa.Column('digest', sa.LargeBinary(), nullable=False),
    sa.Column('answer', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', postgresql.TIMESTAMP(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('batch_id', name=op.f('pk_batches'))
    )
    op.create_table('campaigns',
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('slogan', sa.Text(), server_default='', nullable=False),
    sa.Column('first_day', sa.Date(), nullable=False),
    sa.Column('last_day', sa.Date(), nullable=False),
    sa.Column('baseline_first_day', sa.Date(), nullable=False),
    sa.Column('baseline_last_day', sa.Date(), nullable=False),
    sa.Column('time_zone', sa.Text(), server_default='Asia/Shanghai', nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_campaigns'))
    )
    op.create_table('quarantine',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('provider', sa.Text(), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('txn_id', sa.Text(), nullable=True),
    sa.Column('record', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('batch_id', sa.Text(), nullable=True),
    sa.Column('source', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('created_at', postgresql.TIMESTAMP(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quarantine'))
    )
    op.create_index(op.f('ix_quarantine_provider_code'), 'quarantine', ['provider', 'code'], unique=False)
    op.create_table('quarantine_actions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('action', sa.Text(), nullable=False),
    sa.Column('actor', sa.Text(), nullable=False),
    sa.Column('filters', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('at', postgresql.TIMESTAMP(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quarantine_actions'))
    )
    op.create_table('records',
    sa.Column('provider', sa.Text(), nullable=False),
    sa.Column('txn_id', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('occurred_at', postgresql.TIMESTAMP(timezone=True), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('merchant_id', sa.Text(), nullable=False),
    sa.Column('channel', sa.Text(), nullable=False),
    sa.Column('mcc', sa.Text(), nullable=True),
    sa.Column('original_txn_id', sa.Text(), nullable=True),
    sa.Column('payer_hash', sa.LargeBinary(), nullable=True),
    sa.Column('enterprise', sa.Text(), nullable=False),
    sa.Column('city', sa.Text(), nullable=False),
    sa.Column('category', sa.Text(), nullable=False),
    sa.Column('ingested_at', postgresql.TIMESTAMP(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('provider', 'txn_id', name=op.f('pk_records'))
    )
    op.create_index(op.f('ix_records_day'), 'records', ['day'], unique=False)
    op.create_table('rollup_city_day',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('city', sa.Text(), nullable=False),
    sa.Column('category', sa.Text(), nullable=False),
    sa.Column('channel', sa.Text(), nullable=False),
    sa.Column('provider', sa.Text(), nullable=False),
    sa.Column('payment_count', sa.BigInteger(), nullable=False),
    sa.Column('refund_count', sa.BigInteger(), nullable=False),
    sa.Column('gross_fen', sa.BigInteger(), nullable=False),
    sa.Column('refund_fen', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'city', 'category', 'channel', 'provider', name=op.f('pk_rollup_city_day')),
    postgresql_with={'fillfactor': 50},
    )
    op.create_table('rollup_enterprise_day',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('city', sa.Text(), nullable=False),
    sa.Column('enterprise', sa.Text(), nullable=False),
    sa.Column('category', sa.Text(), nullable=False),
    sa.Column('channel', sa.Text(), nullable=False),
    sa.Column('provider', sa.Text(), nullable=False),
    sa.Column('payment_count', sa.BigInteger(), nullable=False),
    sa.Column('refund_count', sa.BigInteger(), nullable=False),
    sa.Column('gross_fen', sa.BigInteger(), nullable=False),
    sa.Column('refund_fen', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'city', 'enterprise', 'category', 'channel', 'provider', name=op.f('pk_rollup_enterprise_day')),
    postgresql_with={'fillfactor': 50},
    )
    op.create_table('tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.LargeBinary(), nullable=False),
    sa.Column('role', sa.Text(), nullable=False),
    sa.Column('provider', sa.Text(), nullable=True),
    sa.Column('created_at', postgresql.TIMESTAMP(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('revoked_at', postgresql.TIMESTAMP(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_tokens_token_hash'))
    )
    op.create_table('campaign_cities',
    sa.Column('campaign', sa.Text(), nullable=False),
    sa.Column('city', sa.Text(), nullable=False),
    sa.Column('last_day', sa.Date(), nullable=True),
    sa.ForeignKeyConstraint(['campaign'], ['campaigns.code'], name=op.f('fk_campaign_cities_campaign_campaigns')),
    sa.PrimaryKeyConstraint('campaign', 'city', name=op.f('pk_campaign_cities'))
    )
    op.create_table('enterprises',
    sa.Column('uscc', sa.Text(), nullable=False),
    sa.Column('campaign', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('city', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('category', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['campaign'], ['campaigns.code'], name=op.f('fk_enterprises_campaign_campaigns')),
    sa.PrimaryKeyConstraint('uscc', name=op.f('pk_enterprises'))
    )
    op.create_index(op.f('ix_enterprises_campaign_city'), 'enterprises', ['campaign', 'city'], unique=False)
    op.create_table('merchant_accounts',
    sa.Column('provider', sa.Text(), nullable=False),
    sa.Column('merchant_id', sa.Text(), nullable=False),
    sa.Column('uscc', sa.Text(), nullable=False),
    sa.Column('city', sa.Text(), nullable=True),
    sa.Column('category', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['uscc'], ['enterprises.uscc'], name=op.f('fk_merchant_accounts_uscc_enterprises')),
    sa.PrimaryKeyConstraint('provider', 'merchant_id', name=op.f('pk_merchant_accounts'))
    )
    campaigns = sa.table(
        "campaigns",
        sa.column("code", sa.Text),
        sa.column("name", sa.Text),
        sa.column("slogan", sa.Text),
        sa.column("first_day", sa.Date),
        sa.column("last_day", sa.Date),
        sa.column("baseline_first_day", sa.Date),
        sa.column("baseline_last_day", sa.Date),
    )
    op.bulk_insert(
        campaigns,
        [
            {
                "code": "2023",
                "name": "百城万企促消费",
                "slogan": "促消费 惠民生",
                "first_day": date(2023, 9, 9),
                "last_day": date(2023, 10, 8),
                "baseline_first_day": date(2023, 8, 10),
                "baseline_last_day": date(2023, 9, 8),
            }
        ],
    )


def downgrade() -> None:
    op.drop_table('merchant_accounts')
    op.drop_index(op.f('ix_enterprises_campaign_city'), table_name='enterprises')
    op.drop_table('enterprises')
    op.drop_table('campaign_cities')
    op.drop_table('tokens')
    op.drop_table('rollup_enterprise_day')
    op.drop_table('rollup_city_day')
    op.drop_index(op.f('ix_records_day'), table_name='records')
    op.drop_table('records')
    op.drop_table('quarantine_actions')
    op.drop_index(op.f('ix_quarantine_provider_code'), table_name='quarantine')
    op.drop_table('quarantine')
    op.drop_table('campaigns')
    op.drop_table('batches')
