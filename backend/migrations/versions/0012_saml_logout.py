"""sessions: the SAML NameID and SessionIndex of a session signed in through a SAML connection, for single logout

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 13:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('saml_name_id', sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column('saml_name_id_format', sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column('saml_session_index', sa.String(length=256), nullable=True))
        batch_op.create_index('ix_sessions_identity_provider_id_saml_name_id',
                              ['identity_provider_id', 'saml_name_id'], unique=False)


def downgrade():
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_sessions_identity_provider_id_saml_name_id')
        batch_op.drop_column('saml_session_index')
        batch_op.drop_column('saml_name_id_format')
        batch_op.drop_column('saml_name_id')
