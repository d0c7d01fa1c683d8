"""The search domain's facade: what the API, the pages and the MCP tool call as
`search_service.X`. The question is `search.py`; the in-memory indexes `index.py`; the scores
`ranking.py` (pure)."""

from __future__ import annotations

from app.search.models import KINDS, PAGE_FOLDER
from app.search.search import MAX_LIMIT, search

__all__ = ["KINDS", "MAX_LIMIT", "PAGE_FOLDER", "search"]
