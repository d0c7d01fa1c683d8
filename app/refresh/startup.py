"""The service's first start: load ATT&CK when the database holds no release yet."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import Session

from app.attack import service as attack_service
from app.attack.ingest import ingest_sources
from app.attack.sources import BundleFeed
from app.core.config import Settings
from app.core.progress import Step
from app.refresh import service as refresh_service


def ensure_attack_loaded(
    engine: Engine, settings: Settings, *, step: Step | None = None
) -> list[str]:
    """Ingest KBMAP_ATTACK_SOURCE (file, folder, URL, or MITRE's index) if nothing is loaded."""
    with Session(engine) as session:
        loaded = attack_service.list_releases(session)
    if loaded:
        return []
    source = settings.attack_source
    if refresh_service.is_index(source):
        report = refresh_service.refresh(engine, settings, step=step)
        return [report.summary]
    feed = BundleFeed(
        [source],
        limits=settings.limits,
        timeout=settings.download_timeout,
        retries=settings.download_retries,
        deadline=settings.download_deadline,
    )
    outcomes = ingest_sources(engine, feed, limits=settings.limits, step=step)
    return [f"loaded ATT&CK {o.domain} {o.version} from {o.source}" for o in outcomes]
