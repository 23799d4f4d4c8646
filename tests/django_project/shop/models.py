from __future__ import annotations

from django.db import models


class Item(models.Model):
    label = models.CharField(max_length=100)

    class Meta:
        db_table = "items"
        ordering = ["id"]

    def __str__(self) -> str:
        return self.label
