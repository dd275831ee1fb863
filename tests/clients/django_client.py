#!/usr/bin/env python3
"""Django 5 (with psycopg 3) against a running LaneDB server (run by tests/clients.rs).

Usage: python3 django_client.py [HOST] PORT      (HOST defaults to 127.0.0.1)

What a Django application does to its database: `migrate` (Django's own apps and tests/clients/django_shop, each
migration creating tables and recording itself in one transaction block), then the ORM: users and permissions,
bulk_create (INSERT ... SELECT * FROM UNNEST(arrays) RETURNING), filters, ordering and slicing, joins,
aggregates over decimals, times and durations, JSONField lookups (keys, nested keys, containment, key
existence), ArrayField lookups (contains, overlap, contained_by, length, an element), F() updates, many-to-many adds (INSERT ... ON CONFLICT DO NOTHING in
a block), get_or_create, bulk_update, atomic blocks with rollback, savepoints and select_for_update, the
violations Django turns into IntegrityError and ProtectedError, soft deletes under a conditional unique
constraint, raw SQL, server-side cursors (`iterator()`: DECLARE ... CURSOR WITH HOLD, FETCH, CLOSE) and sessions. Every check runs even after an earlier one failed; the program prints each
failure and exits 1 if there was any.
"""

import datetime
import decimal
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from checks import check, expect, finish, host_and_port  # noqa: E402

import django  # noqa: E402
from django.conf import settings  # noqa: E402

host, port = host_and_port()
settings.configure(
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "django",
            "USER": "django",
            "HOST": host,
            "PORT": port,
        }
    },
    INSTALLED_APPS=[
        "django.contrib.contenttypes",
        "django.contrib.auth",
        "django.contrib.sessions",
        "django.contrib.postgres",
        "django_shop.apps.ShopConfig",
    ],
    USE_TZ=True,
    TIME_ZONE="Europe/Paris",
    SECRET_KEY="lanedb-tests",
    PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
)
django.setup()

from django.contrib.auth.models import Group, Permission, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import IntegrityError, connection, transaction  # noqa: E402
from django.db.models import Avg, Count, F, Max, ProtectedError, Sum  # noqa: E402
from django.utils import timezone  # noqa: E402
from django_shop.models import Category, Product, Tag  # noqa: E402


def migrate():
    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM django_migrations WHERE app = 'shop'")
        expect(cursor.fetchone()[0], 4, "shop migrations recorded")
        cursor.execute("SELECT count(*) FROM django_content_type")
        expect(cursor.fetchone()[0] > 0, True, "content types created after migrate")


def users():
    bob = User.objects.create_user("bob", "bob@example.org", "secret")
    expect(User.objects.get(username="bob").check_password("secret"), True, "password")
    staff = Group.objects.create(name="staff")
    staff.permissions.add(*Permission.objects.filter(codename__startswith="add_")[:3])
    bob.groups.add(staff)
    expect(bob.has_perm("shop.add_product") or staff.permissions.count() == 3, True, "permissions")


def catalog():
    root = Category.objects.create(name="root")
    for name in ["a", "b"]:
        Category.objects.create(name=name, parent=root)
    a = Category.objects.get(name="a")
    Product.objects.bulk_create(
        [
            Product(
                name=f"p{i}",
                price=decimal.Decimal("1.50") * i,
                stock=i,
                category=a,
                opens=datetime.time(8, i),
                shelf_life=datetime.timedelta(days=i, hours=1),
                slug=f"s{i}",
                attrs={
                    "color": ["red", "blue"][i % 2],
                    "size": i,
                    "dims": {"w": i * 10, "h": 5},
                    "labels": ["new"] if i <= 3 else [],
                    "note": None,
                },
                labels=["sale", f"l{i}"] if i % 3 == 0 else [f"l{i}"],
                ratings=list(range(i % 4)) or None,
            )
            for i in range(1, 11)
        ]
        + [Product(name="plain", price=1, category=root)]
    )
    expect(Product.objects.count(), 11, "products")
    expect(len({p.sku for p in Product.objects.all()}), 11, "distinct UUIDs")


def queries():
    expect(Product.objects.get(slug="s3").price, decimal.Decimal("4.50"), "get by slug")
    expect(
        list(Product.objects.filter(price__gte=5, price__lt=10).order_by("id").values_list("name", flat=True)),
        ["p4", "p5", "p6"],
        "range filter",
    )
    expect(Product.objects.filter(name__icontains="P1").count(), 2, "icontains")
    expect(
        list(Product.objects.order_by("-price").values_list("name", flat=True)[2:5]), ["p8", "p7", "p6"], "slice"
    )
    expect(
        sorted({p.category.name for p in Product.objects.select_related("category")}), ["a", "root"], "join"
    )
    sku = Product.objects.get(slug="s2").sku
    expect(Product.objects.get(sku=str(sku).upper()).slug, "s2", "UUID in another case")
    expect(Product.objects.filter(opens__lt=datetime.time(8, 5)).count(), 4, "time filter")
    expect(Product.objects.filter(shelf_life__gt=datetime.timedelta(days=5)).count(), 6, "duration filter")
    expect(Product.objects.filter(created__date=timezone.localdate()).count(), 11, "date of an instant")
    totals = Product.objects.aggregate(Sum("price"), Avg("shelf_life"), Max("opens"))
    expect(totals["price__sum"], decimal.Decimal("83.50"), "sum of decimals")
    expect(totals["shelf_life__avg"], datetime.timedelta(days=5, hours=13), "avg of durations")
    expect(totals["opens__max"], datetime.time(8, 10), "max of times")
    expect(
        list(Category.objects.annotate(n=Count("products")).order_by("name").values_list("name", "n")),
        [("a", 10), ("b", 0), ("root", 1)],
        "annotate count",
    )


def json_fields():
    p3 = Product.objects.get(slug="s3")
    expect(p3.attrs["dims"], {"w": 30, "h": 5}, "JSON read back")
    expect(Product.objects.get(name="plain").attrs, {}, "JSON default")
    expect(Product.objects.filter(attrs__color="red").count(), 5, "key equals")
    expect(Product.objects.filter(attrs__size__gt=7).count(), 3, "key greater than (numbers by value)")
    expect(Product.objects.filter(attrs__dims__w=40).get().slug, "s4", "nested key")
    expect(Product.objects.filter(attrs__has_key="labels").count(), 10, "has_key")
    expect(Product.objects.filter(attrs__has_any_keys=["size", "nope"]).count(), 10, "has_any_keys")
    expect(Product.objects.filter(attrs__contains={"color": "blue", "size": 3}).count(), 1, "contains")
    expect(Product.objects.filter(attrs__labels__contains=["new"]).count(), 3, "key contains")
    expect(Product.objects.filter(attrs__contained_by={"color": "red", "size": 2, "dims": {"w": 20, "h": 5}, "labels": ["new"], "note": None}).count(), 2, "contained_by (the empty object too)")
    expect(Product.objects.filter(attrs__note=None).count(), 10, "key is JSON null")
    expect(Product.objects.filter(attrs__color__in=["red", "green"]).count(), 5, "key in")
    expect(Product.objects.filter(attrs__color__startswith="bl").count(), 5, "key text startswith")
    expect(Product.objects.filter(attrs__size__isnull=True).count(), 1, "key isnull")
    expect(
        list(Product.objects.filter(attrs__size__lte=3).order_by("id").values_list("attrs__dims__w", flat=True)),
        [10, 20, 30],
        "values of a nested key",
    )
    p3.attrs["labels"].append("sale")
    p3.save()
    expect(Product.objects.get(slug="s3").attrs["labels"], ["new", "sale"], "JSON saved")
    Product.objects.filter(slug="s2").update(attrs={"color": "green", "quote": 'say "hi"\n'})
    expect(Product.objects.get(slug="s2").attrs, {"color": "green", "quote": 'say "hi"\n'}, "JSON update with escapes")


def array_fields():
    p3 = Product.objects.get(slug="s3")
    expect(p3.labels, ["sale", "l3"], "array read back")
    expect(p3.ratings, [0, 1, 2], "int array read back")
    expect(Product.objects.get(name="plain").labels, [], "array default")
    expect(Product.objects.filter(labels__contains=["sale"]).count(), 3, "array contains")
    expect(Product.objects.filter(labels__overlap=["l1", "l2", "zz"]).count(), 2, "array overlap")
    expect(Product.objects.filter(labels__contained_by=["l1", "l2", "l4"]).count(), 4, "array contained_by")
    expect(Product.objects.filter(labels__len=2).count(), 3, "array length")
    expect(Product.objects.filter(labels__0="sale").count(), 3, "array element")
    expect(Product.objects.filter(ratings__isnull=True).count(), 3, "NULL arrays")
    expect(
        list(Product.objects.filter(slug__in=["s1", "s2"]).order_by("slug").values_list("labels", flat=True)),
        [["l1"], ["l2"]],
        "values of arrays",
    )
    p3.labels.append("new")
    p3.ratings = None
    p3.save()
    p3.refresh_from_db()
    expect((p3.labels, p3.ratings), (["sale", "l3", "new"], None), "array saved")
    expect(Product.objects.filter(slug="s4").update(labels=["a", 'quote"d', "comma,d"]), 1, "array update")
    expect(Product.objects.get(slug="s4").labels, ["a", 'quote"d', "comma,d"], "array with quotes and commas")


def writes():
    expect(Product.objects.filter(stock__lt=3).update(stock=F("stock") + 10), 3, "F() update")
    red, blue = Tag.objects.create(label="red"), Tag.objects.create(label="blue")
    for product in Product.objects.filter(stock__gte=5):
        product.tags.add(red)
    Product.objects.get(slug="s1").tags.add(red, blue)
    Product.objects.get(slug="s1").tags.add(red)
    expect(Product.objects.filter(tags__label="red").count(), 9, "many-to-many")
    expect(Tag.objects.get_or_create(label="green")[1], True, "get_or_create")
    products = list(Product.objects.filter(stock__lt=20))
    for product in products:
        product.stock += 1
    Product.objects.bulk_update(products, ["stock"])
    expect(Product.objects.get(slug="s4").stock, 5, "bulk_update")


def transactions():
    try:
        with transaction.atomic():
            Product.objects.filter(slug="s4").update(stock=0)
            raise ValueError("roll back")
    except ValueError:
        pass
    expect(Product.objects.get(slug="s4").stock, 5, "rolled back")
    with transaction.atomic():
        product = Product.objects.select_for_update().get(slug="s5")
        product.stock = 55
        product.save()
    expect(Product.objects.get(slug="s5").stock, 55, "select_for_update")
    with transaction.atomic():
        Tag.objects.create(label="outer")
        try:
            with transaction.atomic():
                Tag.objects.create(label="inner")
                raise ValueError("savepoint")
        except ValueError:
            pass
    expect(sorted(Tag.objects.filter(label__in=["outer", "inner"]).values_list("label", flat=True)), ["outer"], "savepoint")


def violations():
    root = Category.objects.get(name="root")
    for name, make in [
        ("unique", lambda: Category.objects.create(name="a")),
        ("unique in any case", lambda: Category.objects.create(name="ROOT")),
        ("conditional unique", lambda: Product.objects.create(name="dup", price=1, category=root, slug="s1")),
        ("check", lambda: Product.objects.create(name="neg", price=-1, category=root)),
    ]:
        try:
            with transaction.atomic():
                make()
            raise AssertionError(f"{name}: no IntegrityError")
        except IntegrityError:
            pass
    try:
        Category.objects.get(name="a").delete()
        raise AssertionError("PROTECT: deleted")
    except ProtectedError:
        pass
    # A soft-deleted row frees its slug.
    Product.objects.filter(slug="s1").update(deleted_at=timezone.now())
    Product.objects.create(name="again", price=1, category=root, slug="s1")
    expect(Product.objects.filter(slug="s1").count(), 2, "soft delete")


def deletes_and_raw():
    expect(Tag.objects.filter(label="red").delete()[0] > 1, True, "delete with many-to-many rows")
    Category.objects.filter(name="b").delete()
    expect(
        [p.name for p in Product.objects.raw("SELECT id, name FROM shop_product WHERE stock > %s ORDER BY id LIMIT 2", [5])],
        ["p1", "p2"],
        "raw SQL",
    )
    expect(sum(1 for _ in Product.objects.iterator(chunk_size=3)), 12, "iterator")


def sessions():
    from django.contrib.sessions.backends.db import SessionStore

    store = SessionStore()
    store["cart"] = [1, 2]
    store.create()
    expect(SessionStore(session_key=store.session_key)["cart"], [1, 2], "session")


for name, fn in [
    ("migrate", migrate),
    ("users and permissions", users),
    ("catalog", catalog),
    ("queries", queries),
    ("JSON fields", json_fields),
    ("array fields", array_fields),
    ("writes", writes),
    ("transactions", transactions),
    ("violations", violations),
    ("deletes and raw SQL", deletes_and_raw),
    ("sessions", sessions),
]:
    check(name, fn)
sys.exit(finish("Django"))
