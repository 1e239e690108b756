"""consent per organization: consents.organization_id, unique per (user, client, organization)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 06:21:06.771991

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

NO_ORGANIZATION = sa.text('organization_id IS NULL')


def upgrade():
    # Existing consents keep organization_id NULL: they were given with no organization named,
    # and no longer count for authorizations in an organization.
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('organization_id', sa.Uuid(), nullable=True))
        batch_op.drop_constraint(batch_op.f('uq_consents_user_id_client_pk'), type_='unique')
        batch_op.create_index('ix_consents_organization_id', ['organization_id'], unique=False)
        # NULLs are distinct in a unique constraint on SQLite and PostgreSQL: the partial index
        # keeps one "no organization" consent per user and client.
        batch_op.create_index('uq_consents_user_id_client_pk_no_organization', ['user_id', 'client_pk'], unique=True,
                              sqlite_where=NO_ORGANIZATION, postgresql_where=NO_ORGANIZATION)
        batch_op.create_unique_constraint(batch_op.f('uq_consents_user_id_client_pk_organization_id'), ['user_id', 'client_pk', 'organization_id'])
        batch_op.create_foreign_key(batch_op.f('fk_consents_organization_id_organizations'), 'organizations', ['organization_id'], ['id'], ondelete='CASCADE')


def downgrade():
    # Consents given in an organization have no place in the old (user, client) shape; dropping
    # them only means those users are asked again.
    op.execute(sa.text('DELETE FROM consents WHERE organization_id IS NOT NULL'))
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_consents_organization_id_organizations'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_consents_user_id_client_pk_organization_id'), type_='unique')
        batch_op.drop_index('uq_consents_user_id_client_pk_no_organization')
        batch_op.drop_index('ix_consents_organization_id')
        batch_op.create_unique_constraint(batch_op.f('uq_consents_user_id_client_pk'), ['user_id', 'client_pk'])
        batch_op.drop_column('organization_id')
