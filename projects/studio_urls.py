from django.urls import path

from projects import studio

urlpatterns = [
    path("", studio.studio, name="studio"),
]
