"""The environment domain's facade: what coverage, the routes and the CLI call.

Split by question: parsing (`formats/`), placing in a release (`resolve.py`), the import
(`importing.py`) and the reads (`environments.py`).
"""

from __future__ import annotations

from app.environment.collection import Collector as Collector
from app.environment.collection import collectors as collectors
from app.environment.environments import ENVIRONMENTS_STATE_SQL as ENVIRONMENTS_STATE_SQL
from app.environment.environments import delete_environment as delete_environment
from app.environment.environments import environment_key as environment_key
from app.environment.environments import environment_telemetry as environment_telemetry
from app.environment.environments import get_environment as get_environment
from app.environment.environments import list_environments as list_environments
from app.environment.importing import ImportResult as ImportResult
from app.environment.importing import import_environment as import_environment
from app.environment.models import EnvironmentTelemetry as EnvironmentTelemetry
from app.environment.models import SystemTelemetry as SystemTelemetry

__all__ = [
    "ENVIRONMENTS_STATE_SQL",
    "Collector",
    "EnvironmentTelemetry",
    "ImportResult",
    "SystemTelemetry",
    "collectors",
    "delete_environment",
    "environment_key",
    "environment_telemetry",
    "get_environment",
    "import_environment",
    "list_environments",
]
