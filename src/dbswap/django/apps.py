"""``INSTALLED_APPS = [..., "dbswap.django"]``: connection guards, cleanup, checks, and caches
kept apart per target."""

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

        from ._cache import install as key_caches_per_target
        from ._identity import forget_settings, stamp_login
        from ._routing import close_inactive, on_connection_created
        from .checks import check_setup

        connection_created.connect(on_connection_created, dispatch_uid="dbswap-guard")
        request_finished.connect(close_inactive, dispatch_uid="dbswap-close-inactive")
        user_logged_in.connect(stamp_login, dispatch_uid="dbswap-stamp-login")
        setting_changed.connect(forget_settings, dispatch_uid="dbswap-settings")
        register(check_setup, "database")
        key_caches_per_target()  # a value cached on one target is never read on another
