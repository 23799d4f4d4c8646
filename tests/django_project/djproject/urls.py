from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.decorators.cache import cache_page
from shop import views

urlpatterns = [
    path("", include("dbswap.django.urls")),  # before admin.site.urls and its catch-all
    path("admin/", admin.site.urls),
    path("items", views.items),
    path("items/add", views.add),
    path("cached-items", views.cached_items),  # the cache's low-level API
    path("cached-page", cache_page(300)(views.items)),  # a whole page, cached
    path("slow-add", views.slow_add),
    path("async-items", views.async_items),
    path("async-slow-add", views.async_slow_add),
    path("raw-default", views.raw_default),
    path("atomic-default", views.atomic_default),
    path("atomic-routed", views.atomic_routed),
    path("whoami", views.whoami),
    path("notes", views.notes),
    path("mybooks/", views.my_books),
    path("borrow", views.borrow),
    path("api/items", views.create_item),
]
