"""Every table, imported once so SQLModel.metadata (and Alembic) sees the whole schema."""

from app.attack.models import (  # noqa: F401
    AttackObject,
    Relationship,
    Release,
    TechniqueDataComponent,
    TechniqueTactic,
)
