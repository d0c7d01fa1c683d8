"""The search page (issue 18, being written)."""

from __future__ import annotations

from app.web.rendering import page_router

router = page_router()
