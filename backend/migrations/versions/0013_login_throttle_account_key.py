"""login_throttles.account_key: an administrator's unlock finds an email's per-address counters

A per-address counter's key hashes the address in, so the counter now also names its email's
account counter; POST /api/v1/admin/users/<id>/unlock deletes both.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 13:00:00

Counters already there keep no account_key: they lapse within LOGIN_LOCKOUT_SECONDS anyway.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('login_throttles', schema=None) as batch_op:
        batch_op.add_column(sa.Column('account_key', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_login_throttles_account_key'), ['account_key'], unique=False)


def downgrade():
    with op.batch_alter_table('login_throttles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_throttles_account_key'))
        batch_op.drop_column('account_key')
