"""Funnel email area."""
