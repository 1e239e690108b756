"""authorization codes: redirect_uri is NULL when the authorization request named none

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 09:50:00

RFC 6749 §4.1.3: the token request must repeat redirect_uri only if the authorization request
included it. Codes stored before this revision keep the client's default URI; they live 60 s.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.alter_column('redirect_uri', existing_type=sa.Text(), nullable=True)


def downgrade():
    # A code without a redirect_uri cannot be kept in the old shape; codes live 60 s.
    op.execute(sa.text('DELETE FROM authorization_codes WHERE redirect_uri IS NULL'))
    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.alter_column('redirect_uri', existing_type=sa.Text(), nullable=False)
