from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]
    operations = [
        migrations.CreateModel(
            name="Loan",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("borrower_id", models.IntegerField()),
                ("title", models.CharField(max_length=100)),
            ],
            options={"db_table": "loans", "ordering": ["id"]},
        ),
    ]
