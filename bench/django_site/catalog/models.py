"""LocalLibrary's catalog: genres, authors, books and their copies."""

from __future__ import annotations

from django.db import models


class Genre(models.Model):  # type: ignore[misc]
    name = models.CharField(max_length=200, unique=True)

    def __str__(self) -> str:
        return str(self.name)


class Author(models.Model):  # type: ignore[misc]
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    date_of_birth = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["last_name", "first_name"]

    def __str__(self) -> str:
        return f"{self.last_name}, {self.first_name}"


class Book(models.Model):  # type: ignore[misc]
    title = models.CharField(max_length=200)
    author = models.ForeignKey(Author, on_delete=models.RESTRICT, null=True)
    summary = models.TextField(max_length=1000)
    isbn = models.CharField("ISBN", max_length=13, unique=True)
    genre = models.ManyToManyField(Genre)

    class Meta:
        ordering = ["title", "author"]

    def __str__(self) -> str:
        return str(self.title)


class BookInstance(models.Model):  # type: ignore[misc]
    STATUS = (("m", "Maintenance"), ("o", "On loan"), ("a", "Available"), ("r", "Reserved"))

    book = models.ForeignKey(Book, on_delete=models.RESTRICT)
    imprint = models.CharField(max_length=200)
    due_back = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=1, choices=STATUS, blank=True, default="m")

    class Meta:
        ordering = ["due_back"]

    def __str__(self) -> str:
        return f"{self.id} ({self.book.title})"
