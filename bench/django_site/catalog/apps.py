from __future__ import annotations

from django.apps import AppConfig


class CatalogConfig(AppConfig):  # type: ignore[misc]
    name = "bench.django_site.catalog"
    label = "catalog"
