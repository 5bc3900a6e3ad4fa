# forkhttpd - the only build.
#   make            build/forkhttpd, build/forkload, build/hello.so (and the other apps)
#   make run        build and serve the demo site in www/ on http://127.0.0.1:8888
#                   (make run HOST=0.0.0.0 PORT=8080: another address or port)
#   make install    PREFIX=/usr/local, DESTDIR= (staging): binaries, apps, wsgi.so, tls.so,
#                   compress.so
#   make test       install what the tests need, build, run every test (also under ASan+UBSan)
#   make bench      forkhttpd next to nginx (a benchmark, never part of make test)
#   make fuzz       run the libFuzzer drivers for a while
#   make tsan       the app thread pool's tests under ThreadSanitizer (build-tsan)
#   make clean
#
# BUILD=dir puts outputs elsewhere; SANITIZE=1 builds with ASan+UBSan; CC=clang works too.

CC       ?= cc
BUILD    ?= build
SANITIZE ?=
OPT      ?= -O2

WARN   := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
          -Wmissing-prototypes -Wformat=2 -Wvla -Wcast-qual -Wwrite-strings \
          -Wno-unused-parameter
CFLAGS += -std=gnu11 $(OPT) -g $(WARN) -D_GNU_SOURCE -Iinclude -Isrc -MMD -MP
# The core: libc and libdl (docs/architecture.md). OpenSSL is in build/tls.so
# (TLS_LIBS, below), loaded only when HTTPS is configured (src/tls_load.c);
# zlib and brotli are in build/compress.so (COMPRESS_LIBS), loaded only with
# --compress (src/compress_load.c).
LDLIBS += -ldl
# the app pool (src/app_pool.c) runs apps on threads
CFLAGS  += -pthread
LDFLAGS += -pthread
# Bind every symbol at start (full RELRO): a fork-model child then takes no
# lazy-binding page faults on its first calls (about -10% CPU per connection).
LDFLAGS += -Wl,-z,relro,-z,now
# ...and call libraries through the GOT that binding filled, not through PLT
# stubs: one text page less for each child to fault in.
CFLAGS += -fno-plt

# HTTPS (src/tls.c) needs OpenSSL 3's headers: say which package, not a
# compiler error (not for clean, deps and test: test installs it first).
ifeq ($(filter clean deps deps-build test run run-wsgi,$(MAKECMDGOALS)),)
  ifeq ($(wildcard /usr/include/openssl/ssl.h),)
    $(error OpenSSL headers not found: install Debian's libssl-dev (apt-get install libssl-dev), or run make deps)
  endif
endif

ifeq ($(SANITIZE),1)
  CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
endif
# SANITIZE=thread: ThreadSanitizer (make tsan)
ifeq ($(SANITIZE),thread)
  CFLAGS  += -fsanitize=thread -fno-omit-frame-pointer
  LDFLAGS += -fsanitize=thread
endif

CORE_SRC  := $(filter-out src/main.c src/tls.c src/compress.c,$(wildcard src/*.c))
CORE_OBJ  := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(CORE_SRC))
LOAD_SRC  := $(wildcard tools/forkload/*.c)
LOAD_OBJ  := $(patsubst tools/forkload/%.c,$(BUILD)/obj/forkload/%.o,$(LOAD_SRC))
APP_SRC   := $(wildcard apps/*.c)
APPS      := $(patsubst apps/%.c,$(BUILD)/%.so,$(APP_SRC))
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

PYTEST := /usr/bin/python3 -m pytest

# HTTPS: build/tls.so, the one unit that links OpenSSL (src/tls_module.h).
TLS_SO   := $(BUILD)/tls.so
TLS_LIBS := -lssl -lcrypto
# Compression: build/compress.so, the one unit that links zlib and brotli
# (src/compress_module.h). The unit tests of the codecs link src/compress.c
# itself (COMPRESS_TESTS, below).
COMPRESS_SO    := $(BUILD)/compress.so
COMPRESS_LIBS  := -lz -lbrotlienc
COMPRESS_TESTS := $(BUILD)/tests/test_static_units $(BUILD)/tests/test_gw_compress

# --wsgi runs build/wsgi.so (src/wsgi/, docs/wsgi.md), built only where
# Debian's libpython3.11-dev is installed.
PYCONFIG := /usr/bin/python3.11-config
WSGI_SO  := $(if $(wildcard $(PYCONFIG)),$(BUILD)/wsgi.so)


.PHONY: all run run-wsgi install test unit integration deps deps-build bench fuzz clean tsan soak
all: $(BUILD)/forkhttpd $(BUILD)/forkload $(APPS) $(UNIT_BIN) $(WSGI_SO) $(TLS_SO) $(COMPRESS_SO)

# A fork child faults in each 64 KiB window of our code it runs (the kernel's
# fault-around), and its exit unmaps them. So the serve path is linked first,
# in this order, and the segments are 64 KiB-aligned: the child's code is one
# window (docs/benchmarks.md, issue 19). main() goes last (built without
# -freorder-functions, which would put gcc's main() first, in .text.startup;
# clang has no such section, nor the flag).
HOT_OBJ  := $(patsubst %,$(BUILD)/obj/%.o,model_fork serve worker app_load conn http_parse \
              router h_static http_resp clock transport net confine mime)
LINK_OBJ := $(HOT_OBJ) $(filter-out $(HOT_OBJ),$(CORE_OBJ)) $(BUILD)/obj/main.o
$(BUILD)/obj/main.o: CFLAGS += $(shell $(CC) -fno-reorder-functions -E -x c /dev/null \
                                  >/dev/null 2>&1 && echo -fno-reorder-functions)

$(BUILD)/forkhttpd: $(LINK_OBJ)
	$(CC) $(LDFLAGS) -Wl,-z,max-page-size=0x10000 -o $@ $(LINK_OBJ) $(LDLIBS)

$(BUILD)/forkload: $(LOAD_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ -lssl -lcrypto -lm

$(BUILD)/obj/%.o: src/%.c | $(BUILD)/obj
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj/forkload/%.o: tools/forkload/%.c | $(BUILD)/obj/forkload
	$(CC) $(CFLAGS) -c -o $@ $<

# Apps include only the public header; they need no symbol from the server.
$(BUILD)/%.so: apps/%.c include/forkhttpd_app.h | $(BUILD)
	$(CC) $(CFLAGS) -fPIC -shared -o $@ $<

# An app like the others, linked with libpython (-z nodelete: an interpreter
# is never unloaded). The project's warnings hold for Python 3.11's headers.
# src/http_parse.c (pure) goes in too: the server's one Content-Length parser.
$(BUILD)/wsgi.so: $(wildcard src/wsgi/*.c src/wsgi/*.h) src/http_parse.c include/forkhttpd_app.h | $(BUILD)
	$(CC) $(CFLAGS) $$($(PYCONFIG) --includes) \
	  -DFH_PYTHON_EXE='"'"$$($(PYCONFIG) --exec-prefix)/bin/python3.11"'"' \
	  -fPIC -shared -Wl,-z,nodelete $(LDFLAGS) -o $@ $(filter %.c,$^) \
	  $$($(PYCONFIG) --ldflags --embed)

# HTTPS as a module: only fh_tls_module() is exported (-fvisibility=hidden);
# -z defs: it needs nothing from the server's binary (the core lends it a table
# of callbacks instead; not under the sanitizers, whose runtime clang leaves
# undefined in a .so). -z nodelete: OpenSSL is never unloaded.
$(TLS_SO): src/tls.c | $(BUILD)
	$(CC) $(CFLAGS) -MF $@.d -fPIC -fvisibility=hidden -shared -Wl,-z,nodelete \
	  $(if $(SANITIZE),,-Wl,-z,defs) $(LDFLAGS) -o $@ $< $(TLS_LIBS)

# Compression as a module, built like tls.so: only fh_compress_module() is
# exported, -z defs (it borrows blob_new/blob_unref through a table).
$(COMPRESS_SO): src/compress.c | $(BUILD)
	$(CC) $(CFLAGS) -MF $@.d -fPIC -fvisibility=hidden -shared \
	  $(if $(SANITIZE),,-Wl,-z,defs) $(LDFLAGS) -o $@ $< $(COMPRESS_LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(CORE_OBJ) | $(BUILD)/tests
	$(CC) $(CFLAGS) $(LDFLAGS) -Itests/unit -o $@ $< $(filter %.o,$^) $(LDLIBS)

# The codecs' tests link them in (no dlopen): compress.c hands the core its
# table at start (-DFH_COMPRESS_LINKED).
$(BUILD)/obj/compress_linked.o: src/compress.c | $(BUILD)/obj
	$(CC) $(CFLAGS) -DFH_COMPRESS_LINKED -c -o $@ $<

$(COMPRESS_TESTS): $(BUILD)/tests/%: tests/unit/%.c $(CORE_OBJ) $(BUILD)/obj/compress_linked.o | $(BUILD)/tests
	$(CC) $(CFLAGS) $(LDFLAGS) -Itests/unit -o $@ $< $(filter %.o,$^) $(LDLIBS) $(COMPRESS_LIBS)

$(BUILD) $(BUILD)/obj $(BUILD)/obj/forkload $(BUILD)/tests:
	mkdir -p $@

# make run/run-wsgi HOST=... PORT=...: only from the command line (a shell's
# $$HOST is often the machine's name). Loopback by default: the demo mounts
# /app/environ, which shows the server's environment to whoever asks.
ifneq ($(origin HOST),command line)
  HOST := 127.0.0.1
endif
ifneq ($(origin PORT),command line)
  PORT := 8888
endif

# The demo site: static files, the example C apps, CGI programs.
# On a fresh machine make run first installs what the build needs (apt-get).
run: deps-build
	$(MAKE) all
	$(BUILD)/forkhttpd --root www --host $(HOST) --port $(PORT) --access-log - --autoindex \
	  --app /app/hello=$(BUILD)/hello.so:app \
	  --app /app/echo=$(BUILD)/echo.so:app \
	  --app /app/environ=$(BUILD)/environ.so:app \
	  --cgi /cgi-bin=examples/cgi-bin

# The tutorial's Pyramid, Flask and Django apps (needs build/wsgi.so:
# libpython3.11-dev, python3-flask, python3-pyramid, python3-django).
run-wsgi: deps-build
	$(MAKE) all
	$(BUILD)/forkhttpd --root www --host $(HOST) --port $(PORT) --access-log - --pythonpath apps/python \
	  --wsgi /flask=flaskapp:app --wsgi /pyramid=pyramidapp:app \
	  --wsgi /django=djangoapp.wsgi:application --wsgi /wsgi=hello:app

deps:
	@scripts/deps.sh

deps-build:
	@scripts/deps.sh --build

# make install [PREFIX=/usr/local] [DESTDIR=staging dir]. The server finds
# wsgi.so, tls.so and compress.so next to its own binary (/proc/self/exe, links resolved): the binary
# and the .so files live in PREFIX/lib/forkhttpd, PREFIX/bin/forkhttpd is a
# link to it. The example apps go to PREFIX/lib/forkhttpd (C) and
# PREFIX/share/forkhttpd (Python, CGI, the service files in contrib/); the
# README and docs/ to PREFIX/share/doc/forkhttpd.
PREFIX  ?= /usr/local
DESTDIR ?=
LIBDIR   = $(DESTDIR)$(PREFIX)/lib/forkhttpd
SHAREDIR = $(DESTDIR)$(PREFIX)/share/forkhttpd
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(LIBDIR) $(DESTDIR)$(PREFIX)/include \
	  $(SHAREDIR)/python/djangoapp $(SHAREDIR)/cgi-bin $(SHAREDIR)/contrib
	install -m 755 $(BUILD)/forkhttpd $(LIBDIR)/forkhttpd
	ln -sf ../lib/forkhttpd/forkhttpd $(DESTDIR)$(PREFIX)/bin/forkhttpd
	install -m 755 $(BUILD)/forkload $(DESTDIR)$(PREFIX)/bin/forkload
	install -m 644 $(APPS) $(WSGI_SO) $(TLS_SO) $(COMPRESS_SO) $(LIBDIR)/
	install -m 644 include/forkhttpd_app.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 apps/python/*.py $(SHAREDIR)/python/
	install -m 644 apps/python/djangoapp/*.py $(SHAREDIR)/python/djangoapp/
	install -m 755 examples/cgi-bin/* $(SHAREDIR)/cgi-bin/
	install -m 644 contrib/* $(SHAREDIR)/contrib/
	install -d $(DESTDIR)$(PREFIX)/share/doc/forkhttpd/docs
	install -m 644 README.md $(DESTDIR)$(PREFIX)/share/doc/forkhttpd/
	install -m 644 docs/*.md $(DESTDIR)$(PREFIX)/share/doc/forkhttpd/docs/

# The C unit tests, and the include graph's layer order (scripts/check_layers.py).
unit: all
	prove -f $(UNIT_BIN) scripts/check_layers.py

integration: all
	FORKHTTPD_BUILD=$(BUILD) $(PYTEST) -q tests/integration

# The whole suite: plain build, then again under ASan+UBSan.
test: deps
	$(MAKE) unit integration
	$(MAKE) BUILD=build-asan SANITIZE=1 CC=gcc unit integration

# ThreadSanitizer over the tests of the app thread pool (src/app_pool.c):
# the C apps on pool threads (WSGI is left out: libpython is not built for
# TSan). Not part of make test (time budget); a race fails the test (the
# worker halts with TSan's report on stderr).
tsan:
	$(MAKE) BUILD=build-tsan SANITIZE=thread CC=gcc all
	FORKHTTPD_BUILD=build-tsan TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1" \
	  $(PYTEST) -q -k "not wsgi and not needs_no_server_symbol" tests/integration/test_threads.py tests/integration/test_app.py

bench: all
	scripts/bench.sh

fuzz:
	scripts/fuzz.sh

# A long run at default limits (docs/hardening.md, "Soak"): keep-alive
# clients, slowloris, uploads, CGI and a SIGHUP a minute; SOAK_SECONDS
# (default 600). Not part of make test.
soak: all
	SOAK_SECONDS=$${SOAK_SECONDS:-600} FORKHTTPD_BUILD=$(BUILD) /usr/bin/python3 scripts/soak.py

clean:
	rm -rf build build-asan build-fuzz build-tsan

-include $(wildcard $(BUILD)/obj/*.d $(BUILD)/obj/forkload/*.d $(BUILD)/tests/*.d $(BUILD)/tls.so.d $(BUILD)/compress.so.d)
