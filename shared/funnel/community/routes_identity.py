"""Community API: identity routes (included by funnel.community.routes)."""
from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
