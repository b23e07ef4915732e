"""Package layout of the `funnel` distribution (the rest of the metadata is in pyproject.toml).

The code lives in shared/funnel; the alembic environments stay in the top-level migrations/
folder (the project's documented layout) and are mapped into the package as
``funnel.migrations``, so the built artifact (Lambda layer, browser image, any wheel) carries
them and ``funnel migrate`` / tenant provisioning find them through the package, not the checkout.
"""
from setuptools import find_namespace_packages, find_packages, setup

MIGRATIONS = ["funnel.migrations", *(f"funnel.migrations.{name}" for name in find_namespace_packages(
    "migrations", exclude=["*__pycache__*"]))]  # control, control.versions, tenant, tenant.versions

setup(
    packages=[*find_packages("shared", include=["funnel", "funnel.*"]), *MIGRATIONS],
    package_dir={"": "shared", "funnel.migrations": "migrations"},
)
