"""Funnel local area."""
