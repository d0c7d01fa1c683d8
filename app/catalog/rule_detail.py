"""One rule in full, as its page shows it: the API's `RuleFull` (body and extra fields included)
and how its telemetry was linked (which log source matched which data component; which analytic
of which technique it reads)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from app.catalog.catalogs import get_catalog_row
from app.catalog.models import RuleFull
from app.catalog.rules import full_rule
from app.catalog.tables import Rule, RuleAnalytic, RuleDataComponent
from app.core.errors import NotFound


@dataclass(frozen=True)
class ComponentLink:
    data_component: str  # by name: the link is release-independent
    log_source: str  # the normalised log-source key that matched


@dataclass(frozen=True)
class AnalyticLink:
    analytic: str
    technique: str


@dataclass
class RuleDetail:
    rule: RuleFull
    domain: str  # the release the catalog was validated against
    version: str
    components: list[ComponentLink]
    analytics: list[AnalyticLink]


def get_rule_detail(session: Session, *, catalog: str, rule_id: str) -> RuleDetail:
    """The rule `rule_id` of `catalog`; a missing rule is NotFound naming the catalog."""
    row = get_catalog_row(session, name=catalog)
    rule = session.exec(
        select(Rule).where(Rule.catalog_id == row.id, Rule.rule_id == rule_id)
    ).first()
    if rule is None:
        raise NotFound(
            f"no rule {rule_id!r} in catalog {row.name!r} ({row.rule_count} rules; "
            f"its rule list: /catalogs/{row.name})"
        )
    links = session.exec(
        select(RuleDataComponent).where(RuleDataComponent.rule_pk == rule.id)
    ).all()
    analytics = session.exec(
        select(RuleAnalytic)
        .where(RuleAnalytic.rule_pk == rule.id)
        .order_by(col(RuleAnalytic.analytic), col(RuleAnalytic.technique))
    ).all()
    return RuleDetail(
        rule=full_rule(session, rule, {row.id or 0: row.name}),
        domain=row.domain,
        version=row.attack_version,
        components=sorted(
            {ComponentLink(d.data_component, d.log_source) for d in links},
            key=lambda c: (c.data_component.lower(), c.log_source),
        ),
        analytics=list(dict.fromkeys(AnalyticLink(a.analytic, a.technique) for a in analytics)),
    )
