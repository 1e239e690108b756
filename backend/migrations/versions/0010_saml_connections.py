"""SAML connections: each connection's service-provider key, the AuthnRequest a pending sign-in awaits,
and the assertion-id replay cache

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 11:10:00

The saml kind itself needs no change: identity_providers.kind is a plain string (see 0009).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('identity_providers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sp_private_key_ciphertext', sa.Text(), nullable=True))
    with op.batch_alter_table('federation_states', schema=None) as batch_op:
        batch_op.add_column(sa.Column('saml_request_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('next_url', sa.String(length=2048), nullable=True))
    op.create_table('saml_assertion_uses',
    sa.Column('provider_id', sa.Uuid(), nullable=False),
    sa.Column('assertion_id', sa.String(length=256), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['provider_id'], ['identity_providers.id'],
                            name=op.f('fk_saml_assertion_uses_provider_id_identity_providers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_saml_assertion_uses')),
    sa.UniqueConstraint('provider_id', 'assertion_id', name=op.f('uq_saml_assertion_uses_provider_id_assertion_id'))
    )


def downgrade():
    op.drop_table('saml_assertion_uses')
    with op.batch_alter_table('federation_states', schema=None) as batch_op:
        batch_op.drop_column('next_url')
        batch_op.drop_column('saml_request_id')
    with op.batch_alter_table('identity_providers', schema=None) as batch_op:
        batch_op.drop_column('sp_private_key_ciphertext')
