"""Funnel: multi-tenant serverless growth automation backend.

Domain code lives here by product area (platform, outreach, email, content,
community, notifications); Lambda handlers under ../../functions only translate
events into calls of this package.
"""
