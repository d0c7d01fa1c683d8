"""attack citation: the URL of every source a release's texts cite

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 04:50:00

Releases loaded before this revision have no rows: their pages show cited sources by name until
the release is ingested again (`kbmap ingest --replace FILE`).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "attack_citation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("owner_ref", sa.String(), nullable=False),
        sa.Column("source_name", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["release_id"], ["release.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_citation_release_source", "attack_citation", ["release_id", "source_name"])


def downgrade() -> None:
    op.drop_index("ix_citation_release_source", table_name="attack_citation")
    op.drop_table("attack_citation")
