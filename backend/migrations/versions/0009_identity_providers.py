"""identity providers (federation) and the external identities linked to accounts

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 09:50:00

`kind` is a plain string (no CHECK constraint), like users.status: Federation II adds the saml kind
without a migration. Kind-specific settings are one JSON column (models/federation.py says why).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('identity_providers',
    sa.Column('kind', sa.Enum('google', 'github', 'microsoft', 'oidc', name='identity_provider_kind',
                              native_enum=False, length=16), nullable=False),
    sa.Column('organization_id', sa.Uuid(), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('client_id', sa.String(length=255), nullable=True),
    sa.Column('client_secret_ciphertext', sa.Text(), nullable=True),
    sa.Column('scopes', sa.JSON(), nullable=False),
    sa.Column('trust_email', sa.Boolean(), nullable=False),
    sa.Column('allow_signup', sa.Boolean(), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'],
                            name=op.f('fk_identity_providers_organization_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_identity_providers'))
    )
    with op.batch_alter_table('identity_providers', schema=None) as batch_op:
        batch_op.create_index('ix_identity_providers_organization_id', ['organization_id'], unique=False)

    op.create_table('external_identities',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('provider_id', sa.Uuid(), nullable=False),
    sa.Column('subject', sa.String(length=512), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_used_at', sa.DateTime(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['provider_id'], ['identity_providers.id'],
                            name=op.f('fk_external_identities_provider_id_identity_providers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_external_identities_user_id_users'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_external_identities')),
    sa.UniqueConstraint('provider_id', 'subject', name=op.f('uq_external_identities_provider_id_subject'))
    )
    with op.batch_alter_table('external_identities', schema=None) as batch_op:
        batch_op.create_index('ix_external_identities_user_id', ['user_id'], unique=False)

    op.create_table('federation_states',
    sa.Column('state_hash', sa.String(length=64), nullable=False),
    sa.Column('provider_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['provider_id'], ['identity_providers.id'],
                            name=op.f('fk_federation_states_provider_id_identity_providers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_federation_states')),
    sa.UniqueConstraint('state_hash', name=op.f('uq_federation_states_state_hash'))
    )
    # How a session signed in (amr) and through which provider: the ID token's amr and idp claims.
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('amr', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('identity_provider_id', sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_sessions_identity_provider_id_identity_providers'),
                                    'identity_providers', ['identity_provider_id'], ['id'], ondelete='SET NULL')
    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('identity_provider_id', sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_authorization_codes_identity_provider_id_identity_providers'),
                                    'identity_providers', ['identity_provider_id'], ['id'], ondelete='SET NULL')


def downgrade():
    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_authorization_codes_identity_provider_id_identity_providers'),
                                 type_='foreignkey')
        batch_op.drop_column('identity_provider_id')
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_sessions_identity_provider_id_identity_providers'), type_='foreignkey')
        batch_op.drop_column('identity_provider_id')
        batch_op.drop_column('amr')
    op.drop_table('federation_states')
    with op.batch_alter_table('external_identities', schema=None) as batch_op:
        batch_op.drop_index('ix_external_identities_user_id')
    op.drop_table('external_identities')
    with op.batch_alter_table('identity_providers', schema=None) as batch_op:
        batch_op.drop_index('ix_identity_providers_organization_id')
    op.drop_table('identity_providers')
