"""The app's views: they know nothing of dbswap except where a test needs to look."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.cache import cache
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

import dbswap
import dbswap.django

from .models import Item, Loan

GATE = {"reached": threading.Event(), "release": threading.Event()}
ASYNC_GATE: dict[str, Any] = {}


def _labels() -> list[str]:
    return list(Item.objects.values_list("label", flat=True))


def items(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"alias": dbswap.django.current_alias(), "labels": _labels()})


def cached_items(request: HttpRequest) -> JsonResponse:
    """The labels, from Django's cache when it has them: a page that caches a query."""
    labels = cache.get_or_set("item-labels", _labels, 300)
    return JsonResponse({"alias": dbswap.django.current_alias(), "labels": labels})


@csrf_exempt
def add(request: HttpRequest) -> JsonResponse:
    try:
        Item.objects.create(label=request.POST["label"])
    except dbswap.ReadOnlyTarget as exc:
        return JsonResponse({"error": str(exc)}, status=409)
    return JsonResponse({"alias": dbswap.django.current_alias()}, status=201)


@csrf_exempt
def slow_add(request: HttpRequest) -> JsonResponse:
    seen = _labels()
    GATE["reached"].set()
    assert GATE["release"].wait(10)
    Item.objects.create(label="written-in-flight")
    return JsonResponse({"alias": dbswap.django.current_alias(), "seen": seen})


async def async_items(request: HttpRequest) -> JsonResponse:
    labels = [item.label async for item in Item.objects.all()]
    return JsonResponse({"alias": dbswap.django.current_alias(), "labels": labels})


@csrf_exempt
async def async_slow_add(request: HttpRequest) -> JsonResponse:
    seen = [item.label async for item in Item.objects.all()]
    ASYNC_GATE["reached"].set()
    await asyncio.wait_for(ASYNC_GATE["release"].wait(), 10)
    await Item.objects.acreate(label="async-in-flight")
    return JsonResponse({"alias": dbswap.django.current_alias(), "seen": seen})


def raw_default(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:  # not routed: always "default"
        cursor.execute("SELECT count(*) FROM items")
        return JsonResponse({"count": cursor.fetchone()[0]})


@csrf_exempt
def atomic_default(request: HttpRequest) -> JsonResponse:
    with transaction.atomic():  # no using=: a transaction on "default"
        Item.objects.create(label="atomic")
    return JsonResponse({"ok": True})


@csrf_exempt
def atomic_routed(request: HttpRequest) -> JsonResponse:
    with dbswap.django.atomic():
        Item.objects.create(label="atomic")
    return JsonResponse({"alias": dbswap.django.current_alias()})


def whoami(request: HttpRequest) -> JsonResponse:
    user = request.user.get_username() if request.user.is_authenticated else None
    return JsonResponse({"user": user, "alias": dbswap.django.current_alias()})


@csrf_exempt
def notes(request: HttpRequest) -> HttpResponse:
    """Writes as the signed-in user, as the issue's app posts as ``user_id``."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    Item.objects.create(label=f"{request.user.get_username()}: {request.POST['text']}")
    return JsonResponse({"alias": dbswap.django.current_alias()}, status=201)


def my_books(request: HttpRequest) -> HttpResponse:
    """The signed-in user's rows, read by their id (a library's "my loans" page)."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    titles = Loan.objects.filter(borrower_id=request.user.pk).values_list("title", flat=True)
    return JsonResponse({"user": request.user.get_username(), "titles": list(titles)})


@csrf_exempt
def borrow(request: HttpRequest) -> HttpResponse:
    """Records the signed-in user's id in a row."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    Loan.objects.create(borrower_id=request.user.pk, title=request.POST["title"])
    return JsonResponse({"alias": dbswap.django.current_alias()}, status=201)


@csrf_exempt
def create_item(request: HttpRequest) -> JsonResponse:
    """Writes a form's or a JSON body's label, and leaves a refused write to the framework."""
    form = request.content_type != "application/json"
    Item.objects.create(label=request.POST["label"] if form else json.loads(request.body)["label"])
    return JsonResponse({"alias": dbswap.django.current_alias()}, status=201)
