"""A small Django project switched by dbswap: the settings a user would write."""

from __future__ import annotations

from pathlib import Path

from dbswap.django import databases_from_env

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "django-insecure-dbswap-tests-0123456789abcdef"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "djproject.urls"
LOGIN_URL = "/admin/login/"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "dbswap.django",
    "shop",
]
MIDDLEWARE = [
    "dbswap.django.DBSwapMiddleware",  # first: sessions and auth are pinned too
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = databases_from_env(cwd=BASE_DIR)
DATABASE_ROUTERS = ["dbswap.django.DBSwapRouter"]
