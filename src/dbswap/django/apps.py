"""``INSTALLED_APPS = [..., "dbswap.django"]``: connection guards, cleanup and checks."""

from __future__ import annotations

from django.apps import AppConfig


class DBSwapConfig(AppConfig):  # type: ignore[misc]
    name = "dbswap.django"
    label = "dbswap"
    verbose_name = "dbswap"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in
        from django.core.checks import register
        from django.core.signals import request_finished, setting_changed
        from django.db.backends.signals import connection_created

        from ._identity import forget_settings, stamp_login
        from ._routing import close_inactive, on_connection_created
        from .checks import check_setup

        connection_created.connect(on_connection_created, dispatch_uid="dbswap-guard")
        request_finished.connect(close_inactive, dispatch_uid="dbswap-close-inactive")
        user_logged_in.connect(stamp_login, dispatch_uid="dbswap-stamp-login")
        setting_changed.connect(forget_settings, dispatch_uid="dbswap-settings")
        register(check_setup, "database")
