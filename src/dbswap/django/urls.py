"""The admin routes. Include them BEFORE ``admin.site.urls``, whose catch-all would
otherwise answer ``admin/configuration``::

    urlpatterns = [
        path("", include("dbswap.django.urls")),   # first
        path("admin/", admin.site.urls),
        ...
    ]
"""

from __future__ import annotations

import re

from django.urls import include, path, re_path

from . import _ops, _preview, views

app_name = "dbswap"

_routes = [
    path("api/admin/database", views.status, name="status"),
    path("api/admin/database/switch", views.switch, name="switch"),
    path("api/admin/database/history", views.history, name="history"),
    path("api/admin/database/preview", _preview.view, name="preview"),
    path("admin/configuration", views.configuration, name="configuration"),
    # 404 unless settings.DBSWAP_READINESS / DBSWAP_METRICS (see _ops)
    path("healthz/database", _ops.readiness, name="readiness"),
    path("metrics", _ops.metrics, name="metrics"),
]

# Behind one pattern that matches their beginnings without consuming them: a project that
# includes these first, at "", pays one failed match on each of its own pages, not seven.
_beginnings = "|".join(sorted({re.escape(str(route.pattern)) for route in _routes}))
urlpatterns = [re_path(f"^(?={_beginnings})", include(_routes))]
