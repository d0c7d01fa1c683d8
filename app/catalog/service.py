"""The catalog's façade: what other domains, the routes and the CLI call.

Split by question: importing (`importing.py`, writing `writing.py`), catalogs (`catalogs.py`),
rules (`rules.py`), export (`exporting.py`), reads of mappings for other domains (`mappings.py`);
the upgrade is `upgrade.py`. Callers import this module only, so the split can move again.
"""

from __future__ import annotations

from app.catalog.catalogs import CATALOGS_STATE_SQL as CATALOGS_STATE_SQL
from app.catalog.catalogs import catalog_ids as catalog_ids
from app.catalog.catalogs import catalog_key as catalog_key
from app.catalog.catalogs import catalog_read as catalog_read
from app.catalog.catalogs import delete_catalog as delete_catalog
from app.catalog.catalogs import find_catalog_row as find_catalog_row
from app.catalog.catalogs import get_catalog as get_catalog
from app.catalog.catalogs import get_catalog_row as get_catalog_row
from app.catalog.catalogs import list_catalogs as list_catalogs
from app.catalog.exporting import canonical_document as canonical_document
from app.catalog.exporting import export_catalog as export_catalog
from app.catalog.exporting import stix_export as stix_export
from app.catalog.importing import ImportResult as ImportResult
from app.catalog.importing import catalog_name_from as catalog_name_from
from app.catalog.importing import import_catalog as import_catalog
from app.catalog.importing import import_parsed as import_parsed
from app.catalog.importing import log_source_map as log_source_map
from app.catalog.importing import parse_source as parse_source
from app.catalog.importing import pick_release as pick_release
from app.catalog.mappings import LogbookEntry as LogbookEntry
from app.catalog.mappings import RuleFootprint as RuleFootprint
from app.catalog.mappings import RuleTelemetry as RuleTelemetry
from app.catalog.mappings import RuleText as RuleText
from app.catalog.mappings import catalogs_by_id as catalogs_by_id
from app.catalog.mappings import counted_mappings as counted_mappings
from app.catalog.mappings import logbooks as logbooks
from app.catalog.mappings import rule_footprints as rule_footprints
from app.catalog.mappings import rule_telemetry as rule_telemetry
from app.catalog.mappings import rule_texts as rule_texts
from app.catalog.mappings import written_mappings as written_mappings
from app.catalog.platforms import PlatformMap as PlatformMap
from app.catalog.platforms import platform_map as platform_map
from app.catalog.readers import RuleReading as RuleReading
from app.catalog.readers import RulesReading as RulesReading
from app.catalog.readers import rules_reading as rules_reading
from app.catalog.rule_detail import RuleDetail as RuleDetail
from app.catalog.rule_detail import get_rule_detail as get_rule_detail
from app.catalog.rule_list import RuleListPage as RuleListPage
from app.catalog.rule_list import RuleRow as RuleRow
from app.catalog.rule_list import catalog_rule_page as catalog_rule_page
from app.catalog.rules import RuleState as RuleState
from app.catalog.rules import get_rule as get_rule
from app.catalog.rules import list_rules as list_rules
from app.catalog.rules import rule_labels as rule_labels
from app.catalog.rules import rule_states as rule_states
from app.catalog.rules import rules_for_techniques as rules_for_techniques
from app.catalog.telemetry import LogSourceMap as LogSourceMap
from app.catalog.telemetry import analytic_ref_keys as analytic_ref_keys
from app.catalog.telemetry import data_components_for as data_components_for
from app.catalog.writing import match_analytics as match_analytics
from app.catalog.writing import write_rules as write_rules

__all__ = [
    "CATALOGS_STATE_SQL",
    "ImportResult",
    "LogSourceMap",
    "LogbookEntry",
    "PlatformMap",
    "RuleDetail",
    "RuleFootprint",
    "RuleListPage",
    "RuleReading",
    "RuleRow",
    "RuleState",
    "RuleTelemetry",
    "RuleText",
    "RulesReading",
    "analytic_ref_keys",
    "canonical_document",
    "catalog_ids",
    "catalog_key",
    "catalog_name_from",
    "catalog_read",
    "catalog_rule_page",
    "catalogs_by_id",
    "counted_mappings",
    "data_components_for",
    "delete_catalog",
    "export_catalog",
    "find_catalog_row",
    "get_catalog",
    "get_catalog_row",
    "get_rule",
    "get_rule_detail",
    "import_catalog",
    "import_parsed",
    "list_catalogs",
    "list_rules",
    "log_source_map",
    "logbooks",
    "match_analytics",
    "parse_source",
    "pick_release",
    "platform_map",
    "rule_footprints",
    "rule_labels",
    "rule_states",
    "rule_telemetry",
    "rule_texts",
    "rules_for_techniques",
    "rules_reading",
    "stix_export",
    "write_rules",
    "written_mappings",
]
