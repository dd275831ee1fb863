"""The models tests/clients/django_client.py migrates and uses: the field types and constraints Django applications
commonly have (UUID, decimal, time, duration, timestamps, JSON, arrays, a self-reference, PROTECT and CASCADE keys, a
many-to-many, a conditional unique constraint for soft deletes, a CHECK, a case-insensitive unique constraint, GIN and
BRIN indexes)."""

import uuid

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import BrinIndex, GinIndex
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower


class Category(models.Model):
    name = models.CharField(max_length=100, unique=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE)

    class Meta:
        constraints = [models.UniqueConstraint(Lower("name"), name="category_name_ci")]


class Product(models.Model):
    sku = models.UUIDField(default=uuid.uuid4, unique=True)
    name = models.CharField(max_length=200, db_index=True)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    stock = models.PositiveIntegerField(default=0)
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="products")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    opens = models.TimeField(null=True)
    shelf_life = models.DurationField(null=True)
    active = models.BooleanField(default=True)
    slug = models.SlugField(null=True)
    deleted_at = models.DateTimeField(null=True)
    attrs = models.JSONField(default=dict)
    labels = ArrayField(models.CharField(max_length=20), default=list)
    ratings = ArrayField(models.IntegerField(), null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["slug"], condition=Q(deleted_at__isnull=True), name="live_slug"
            ),
            models.CheckConstraint(condition=Q(price__gte=0), name="price_nonneg"),
        ]
        indexes = [
            GinIndex(fields=["attrs"], name="product_attrs_gin"),
            GinIndex(fields=["labels"], name="product_labels_gin"),
            BrinIndex(fields=["created"], name="product_created_brin"),
        ]


class Tag(models.Model):
    label = models.CharField(max_length=50)
    products = models.ManyToManyField(Product, related_name="tags")
