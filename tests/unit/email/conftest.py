"""The e-mail rules tests' fixture: ``email_area``, the in-memory fake store (``fake_area``)."""
from tests.unit.email.fake_area import email_area  # noqa: F401 (a fixture, found by pytest here)
