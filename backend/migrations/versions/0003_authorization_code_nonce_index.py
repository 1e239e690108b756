"""index authorization codes by (client, nonce): the authorization endpoint's replay check

Every authorization request with a nonce asks whether this client already used it
(services/grants.nonce_used). Codes are kept after redemption, so without an index
that check scans every code ever issued.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 03:20:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.create_index('ix_authorization_codes_client_pk_nonce', ['client_pk', 'nonce'], unique=False)


def downgrade():
    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.drop_index('ix_authorization_codes_client_pk_nonce')
