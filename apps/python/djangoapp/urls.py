from django.urls import path

from djangoapp import views

urlpatterns = [path("hello", views.hello)]
