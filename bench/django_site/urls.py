from __future__ import annotations

from django.urls import include, path

urlpatterns = [path("catalog/", include("bench.django_site.catalog.urls"))]
