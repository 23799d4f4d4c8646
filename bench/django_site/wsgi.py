"""``gunicorn bench.django_site.wsgi:application`` (``DJANGO_SETTINGS_MODULE`` from the harness)."""

from __future__ import annotations

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()
