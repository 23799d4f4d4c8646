"""The admin routes. Include them BEFORE ``admin.site.urls``, whose catch-all would
otherwise answer ``admin/configuration``::

    urlpatterns = [
        path("", include("dbswap.django.urls")),   # first
        path("admin/", admin.site.urls),
        ...
    ]
"""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "dbswap"

urlpatterns = [
    path("api/admin/database", views.status, name="status"),
    path("api/admin/database/switch", views.switch, name="switch"),
    path("api/admin/database/history", views.history, name="history"),
    path("admin/configuration", views.configuration, name="configuration"),
]
