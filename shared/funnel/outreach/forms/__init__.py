"""Contact-form engine: find a company's contact form, fill it from a sender profile, submit it.

The browser part lives in :mod:`funnel.outreach.forms.engine` and imports Playwright
lazily; classification and formatting (:mod:`.fields`, :mod:`.fill`, :mod:`.detect`)
are plain Python.
"""
from funnel.outreach.forms.model import FieldFill, FormResult, SenderProfile, Status

__all__ = ["FieldFill", "FormResult", "SenderProfile", "Status"]
