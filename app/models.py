"""Every table, imported once so SQLModel.metadata (and Alembic) sees the whole schema."""

from app.attack.models import (  # noqa: F401
    AttackObject,
    Relationship,
    Release,
    TechniqueDataComponent,
    TechniqueTactic,
)
from app.auth.models import ApiToken, AuditEvent  # noqa: F401
from app.catalog.models import (  # noqa: F401
    Catalog,
    Rule,
    RuleAnalytic,
    RuleDataComponent,
    RuleTechnique,
)
