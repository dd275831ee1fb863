from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "django_shop"
    label = "shop"
    default_auto_field = "django.db.models.BigAutoField"
