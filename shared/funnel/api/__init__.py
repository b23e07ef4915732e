"""Funnel api area."""
