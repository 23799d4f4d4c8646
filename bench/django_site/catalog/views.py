"""LocalLibrary's views: the index (a visit counter in the session), the book list and detail."""

from __future__ import annotations

import os
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views import generic

from .models import Author, Book, BookInstance


def index(request: HttpRequest) -> HttpResponse:
    visits = request.session.get("num_visits", 0) + 1
    request.session["num_visits"] = visits  # a session write, as LocalLibrary's index does
    context = {
        "num_books": Book.objects.count(),
        "num_instances": BookInstance.objects.count(),
        "num_instances_available": BookInstance.objects.filter(status="a").count(),
        "num_authors": Author.objects.count(),
        "num_visits": visits,
    }
    return render(request, "catalog/index.html", context)


class BookListView(generic.ListView):  # type: ignore[misc]
    model = Book
    paginate_by = 10
    queryset = Book.objects.select_related("author")


class BookDetailView(generic.DetailView):  # type: ignore[misc]
    model = Book

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(**kwargs)
        context["genres"] = list(self.object.genre.all())
        context["copies"] = list(self.object.bookinstance_set.all())
        return context


def pid(request: HttpRequest) -> JsonResponse:
    """Which worker answered: the harness waits until every worker has."""
    return JsonResponse({"pid": os.getpid()})
