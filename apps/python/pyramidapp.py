"""The tutorial's Pyramid app: forkhttpd --wsgi pyramidapp:app (then GET /hello)."""
from pyramid.config import Configurator
from pyramid.response import Response


def hello_world(request):
    return Response("Hello world from Pyramid!\n", content_type="text/plain", charset="utf-8")


config = Configurator()
config.add_route("hello", "/hello")
config.add_view(hello_world, route_name="hello")
app = config.make_wsgi_app()
