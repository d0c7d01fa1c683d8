"""Which environments collect a data component: the object pages' "do you collect it"."""

from __future__ import annotations

from collections.abc import Collection
from typing import NamedTuple

from sqlmodel import Session

from app.environment.environments import environment_telemetry, list_environments


class Collector(NamedTuple):
    """An environment of the domain and, per data component asked, the systems collecting it
    (counted log sources only; none when it is not collected there)."""

    environment: str
    systems: dict[str, list[str]]  # data component (as asked) → system names


def collectors(
    session: Session, *, domain: str, data_components: Collection[str]
) -> list[Collector]:
    """Every environment placed in `domain`, with what it collects of `data_components`; the
    telemetry is the cached one coverage reads."""
    out = []
    for env in list_environments(session):
        if env.domain != domain:
            continue
        tel = environment_telemetry(session, name=env.name)
        out.append(
            Collector(
                env.name,
                {
                    dc: [s.name for s in tel.systems if dc.lower() in s.components]
                    for dc in data_components
                },
            )
        )
    return out
