"""Funnel platform area."""
