"""Funnel community area."""
