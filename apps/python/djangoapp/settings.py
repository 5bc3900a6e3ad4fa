"""A minimal Django project: one view, no database, no sessions."""
SECRET_KEY = "forkhttpd-example-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "djangoapp.urls"
INSTALLED_APPS = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]  # sets Content-Length
DATABASES = {}
USE_TZ = True
# Django sets the process's TZ from TIME_ZONE (default "America/Chicago"):
# say which. The server's log keeps the zone it started in whatever this says.
TIME_ZONE = "UTC"
