"""A minimal Django project: one view, no database, no sessions."""
SECRET_KEY = "forkhttpd-example-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "djangoapp.urls"
INSTALLED_APPS = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]  # sets Content-Length
DATABASES = {}
USE_TZ = True
