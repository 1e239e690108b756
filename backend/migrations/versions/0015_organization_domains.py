"""organization_domains: domains an organization claims and proves with a DNS TXT record; a verified
domain is one organization's alone (a partial unique index)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 13:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('organization_domains',
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('domain', sa.String(length=253), nullable=False),
    sa.Column('verification_token', sa.String(length=64), nullable=False),
    sa.Column('verified_at', sa.DateTime(), nullable=True),
    sa.Column('identity_provider_id', sa.Uuid(), nullable=True),
    sa.Column('auto_redirect', sa.Boolean(), nullable=False),
    sa.Column('enforce_sso', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['identity_provider_id'], ['identity_providers.id'],
                            name=op.f('fk_organization_domains_identity_provider_id_identity_providers'),
                            ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'],
                            name=op.f('fk_organization_domains_organization_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organization_domains')),
    sa.UniqueConstraint('organization_id', 'domain', name=op.f('uq_organization_domains_organization_id_domain'))
    )
    with op.batch_alter_table('organization_domains', schema=None) as batch_op:
        batch_op.create_index('uq_organization_domains_verified_domain', ['domain'], unique=True,
                              sqlite_where=sa.text('verified_at IS NOT NULL'),
                              postgresql_where=sa.text('verified_at IS NOT NULL'))


def downgrade():
    with op.batch_alter_table('organization_domains', schema=None) as batch_op:
        batch_op.drop_index('uq_organization_domains_verified_domain')
    op.drop_table('organization_domains')
