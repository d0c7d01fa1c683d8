"""The table registry: every domain's tables, imported once at the top so SQLModel.metadata (and
Alembic) sees the whole schema. Core never imports domains; entry points pass `METADATA` down."""

from sqlalchemy import Engine
from sqlmodel import SQLModel

from app.attack.tables import (  # noqa: F401
    AttackObject,
    Citation,
    Relationship,
    Release,
    TechniqueDataComponent,
    TechniqueTactic,
)
from app.auth.tables import ApiToken, AuditEvent  # noqa: F401
from app.catalog.tables import (  # noqa: F401
    Catalog,
    Rule,
    RuleAnalytic,
    RuleDataComponent,
    RuleTechnique,
)
from app.core.db import migrate
from app.environment.tables import (  # noqa: F401
    Environment,
    EnvironmentLogSource,
    EnvironmentSystem,
)
from app.history.tables import (  # noqa: F401
    CoverageCurrent,
    CoverageDelta,
    CoverageSnapshot,
    CoverageSnapshotScope,
)

METADATA = SQLModel.metadata


def init_db(engine: Engine) -> None:
    """Make or upgrade the whole schema (tests, scripts and ingest into a fresh file)."""
    migrate(engine, METADATA)
