from __future__ import annotations

from django.urls import include, path

urlpatterns = [
    path("", include("dbswap.django.urls")),  # dbswap's admin page and API
    path("catalog/", include("bench.django_site.catalog.urls")),
]
