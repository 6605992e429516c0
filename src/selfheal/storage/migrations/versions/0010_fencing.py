"""fencing tokens and heal-loop claims (issue 12: each action once across replicas)

``cluster_members.token`` changes whenever a member (re)joins after its row had
expired; ``incidents.healer``/``healer_token`` say which replica's heal loop owns
the incident, under which token; ``actions.member_id``/``fence_token`` record the
lease an action was started under.

Revision ID: 0010_fencing
Revises: 0009_key_scopes
Create Date: 2026-12-02 12:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_fencing"
down_revision = "0009_key_scopes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cluster_members") as batch:
        batch.add_column(sa.Column("token", sa.BigInteger(), nullable=False, server_default="0"))
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("healer", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("healer_token", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("actions") as batch:
        batch.add_column(sa.Column("member_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("fence_token", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("actions") as batch:
        batch.drop_column("fence_token")
        batch.drop_column("member_id")
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("healer_token")
        batch.drop_column("healer")
    with op.batch_alter_table("cluster_members") as batch:
        batch.drop_column("token")
