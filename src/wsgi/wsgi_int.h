/* wsgi_int.h - what the units of wsgi.so share (docs/wsgi.md is the user's
 * side, include/forkhttpd_app.h the interface it is an app on):
 *
 *   wsgi.c     app(): one request - the environ, call the WSGI callable,
 *              hand what it returned to body.c
 *   interp.c   the interpreter in this process, the GIL, fork handlers,
 *              exceptions into the log; app_init()/app_fini() per mount
 *   objects.c  the Python objects a request gets: start_response, write,
 *              wsgi.input, wsgi.file_wrapper; the request object (wreq)
 *   environ.c  the environ dict: a per-app template plus per-request keys
 *   body.c     what the app returned, as one body source: memory, sendfile
 *              or a stream pulled by the server
 *
 * Only app, app_init and app_fini (and the API version) leave wsgi.so: what
 * is declared below the visibility pragma is hidden, so no name here can
 * clash with, or be taken over by, libpython's or the server's. */
#ifndef FH_WSGI_INT_H
#define FH_WSGI_INT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <forkhttpd_app.h>

#include <stdint.h>

/* the app's entry points (include/forkhttpd_app.h): wsgi.c, interp.c */
fh_handler app;
fh_init app_init;
fh_fini app_fini;
extern const unsigned app_flags; /* FH_APP_THREAD_SAFE: the GIL guards Python (wsgi.c) */

#pragma GCC visibility push(hidden)

/* ======================= per-app and per-request state ======================= */

struct inst {
    PyObject *app;    /* the callable */
    PyObject *env0;   /* environ template: the keys that never change */
    PyObject *script; /* SCRIPT_NAME of the last request, and its bytes */
    char *script_c;
    size_t script_len;
    char *spec; /* "module:callable" */
    int software_set;
};

typedef struct wreq wreq;

typedef struct {
    PyObject_HEAD
    wreq *q; /* NULL once the request is over */
} ReqObject;  /* start_response and write */

#define INBUF 8192
typedef struct {
    PyObject_HEAD
    wreq *q;
    int64_t taken;   /* bytes taken from fh_read */
    size_t pos, len; /* unread bytes buf[pos..len) */
    char buf[INBUF];
} InputObject;

struct wreq {
    wreq *next_free;
    fh_req *r;
    struct inst *in;
    int started;       /* start_response was called */
    int committed;     /* a non-empty body piece exists: the headers count as sent */
    int status;
    PyObject *headers; /* the list given to start_response */
    int64_t declared;  /* its Content-Length, -1 none */
    char *wbuf;        /* write() data: sent before the iterable's */
    size_t wlen, wcap, woff;
    PyObject *result;  /* the iterable the app returned: close() it once */
    PyObject *iter;    /* streaming: its iterator... */
    PyObject *seq;     /* ...or a list/tuple walked by index */
    Py_ssize_t seq_i;
    PyObject *cur;     /* the bytes being sent, from cur_off */
    Py_ssize_t cur_off;
    ReqObject *sr, *wr;
    InputObject *inp;
};

/* ---- interp.c ---- */

/* The GIL, held by this (the main) thread only while Python code runs. */
void gil_take(void);
void gil_drop(void);
int gil_held(void); /* our code holds it right now */
/* The pending exception: one line through the server's log, the traceback
 * to sys.stderr (the error log); never to the client. */
void log_exception(fh_req *r, const char *what);

/* ---- objects.c ---- */

extern PyObject *filewrapper; /* the wsgi.file_wrapper class */
/* The types and wsgi.file_wrapper, once the interpreter runs: 0 or -1. */
int objects_init(void);
/* A request with its start_response, write and wsgi.input objects: NULL,
 * or one of q->sr, q->wr, q->inp NULL, when out of memory. GIL held. */
wreq *wreq_new(fh_req *r, struct inst *in);
/* The request is over: close() the iterable, free q. With the GIL held. */
void wreq_end(wreq *q);
/* Free what is kept for reuse (before the interpreter is finalised). */
void spare_free(void);
void wreq_pool_free(void);
/* name (a str) is lower, compared ASCII case-insensitively */
int name_is(PyObject *name, const char *lower);

/* ---- environ.c ---- */

/* The interned keys and constant values, once the interpreter runs. */
int environ_init(void);
/* The keys every request has with the same value; NULL on error. */
PyObject *environ_template(int multiprocess, int multithread);
/* The request's environ dict: a copy of the template plus its keys. */
PyObject *build_environ(wreq *q);

/* ---- body.c ---- */

/* Turn what the app returned into the response. Until the first non-empty
 * piece exists, an error undoes everything: the request becomes a 500.
 * DONE: the response is set; FAIL: a Python exception is pending (the caller
 * logs it and answers 500); STREAMING: the server now owns q (wsgi_read,
 * then wsgi_close ends it). */
enum { DONE, FAIL, STREAMING, GO_ON };
int respond(wreq *q, PyObject *result);

#pragma GCC visibility pop

#endif
