# Written as Django 5.2's makemigrations writes it for tests/clients/django_shop/models.py: GIN indexes on a JSON and
# an array column, a BRIN index on a timestamp, and a case-insensitive unique constraint (an index on lower(name)).

import django.contrib.postgres.indexes
import django.db.models.functions.text
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('shop', '0003_product_labels'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='product',
            index=django.contrib.postgres.indexes.GinIndex(fields=['attrs'], name='product_attrs_gin'),
        ),
        migrations.AddIndex(
            model_name='product',
            index=django.contrib.postgres.indexes.GinIndex(fields=['labels'], name='product_labels_gin'),
        ),
        migrations.AddIndex(
            model_name='product',
            index=django.contrib.postgres.indexes.BrinIndex(fields=['created'], name='product_created_brin'),
        ),
        migrations.AddConstraint(
            model_name='category',
            constraint=models.UniqueConstraint(django.db.models.functions.text.Lower('name'), name='category_name_ci'),
        ),
    ]
