"""Funnel content area."""
