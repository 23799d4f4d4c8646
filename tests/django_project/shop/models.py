from __future__ import annotations

from django.db import models


class Item(models.Model):
    label = models.CharField(max_length=100)

    class Meta:
        db_table = "items"
        ordering = ["id"]

    def __str__(self) -> str:
        return self.label


class Loan(models.Model):
    """A row that belongs to a user by id, as a library's loans or a shop's orders do."""

    borrower_id = models.IntegerField()
    title = models.CharField(max_length=100)

    class Meta:
        db_table = "loans"
        ordering = ["id"]
