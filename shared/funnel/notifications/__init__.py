"""Funnel notifications area."""
