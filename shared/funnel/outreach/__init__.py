"""Funnel outreach area."""
