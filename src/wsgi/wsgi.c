/* wsgi.c - PEP 3333: Python WSGI apps on forkhttpd (--wsgi [PREFIX=]module:callable).
 *
 * This is an ordinary app on the public C interface (include/forkhttpd_app.h),
 * built as build/wsgi.so and linked with libpython3.11; the server knows only
 * that --wsgi mounts "wsgi.so:app" with "module:callable" as the mount's
 * argument (fh_mount_arg). docs/wsgi.md is the user's side of it.
 *
 *   init     app_init(): start the interpreter (once per process), import the
 *            module, find the callable, build the environ template.
 *   request  app(): environ dict + start_response + wsgi.input; call the app;
 *            turn what it returned into one body source: memory (lists),
 *            sendfile (wsgi.file_wrapper over a regular file), or a pull
 *            stream (any other iterable, sent as it is produced).
 *   stream   wsgi_read()/wsgi_close(): next() the iterable when the socket can
 *            take more; close() the iterable exactly once, also when the
 *            client went away.
 *   fork     pthread_atfork: PyOS_BeforeFork/AfterFork_* around every fork of
 *            a process that runs Python (the preloading master, the fork
 *            model's parent), as os.fork() does.
 *
 * The GIL: the process's main thread holds it only while Python code runs
 * (init, a request, a stream callback) and releases it between them, so
 * threads an app starts keep running while the server waits on the network.
 *
 * The per-request path avoids allocation where it can: the environ starts as
 * a copy of a per-app template holding the constant keys, keys are interned
 * once, HTTP_* keys come from a small cache, the values that rarely change
 * (method, SERVER_NAME, REMOTE_ADDR, ports) are reused, and start_response,
 * write and wsgi.input objects are reused when the app kept no reference. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <forkhttpd_app.h>

#include "http_parse.h" /* http_parse_content_length: src/http_parse.c is linked in */

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef FH_PYTHON_EXE
#define FH_PYTHON_EXE "/usr/bin/python3.11"
#endif

fh_handler app;
fh_init app_init;
fh_fini app_fini;

/* ======================= per-process state ======================= */

static int py_live;            /* the interpreter is initialised in this process */
static int py_in_call;         /* this thread holds the GIL right now (our code runs Python) */
static PyThreadState *py_main; /* the main thread's state while the GIL is released */
static pid_t py_owner;         /* the process that initialised the interpreter */
static int py_users;           /* apps (mounts) whose init succeeded in this process */
static int atfork_done;

static void gil_take(void)
{
    PyEval_RestoreThread(py_main);
    py_in_call = 1;
}

static void gil_drop(void)
{
    py_in_call = 0;
    py_main = PyEval_SaveThread();
}

/* Around fork() of a process with a live interpreter that is not inside
 * Python (when Python itself forks, os.fork/subprocess do this themselves
 * with the GIL held, and py_in_call is set). */
static void at_prepare(void)
{
    if (py_live && !py_in_call) {
        PyEval_RestoreThread(py_main);
        PyOS_BeforeFork();
    }
}

static void at_parent(void)
{
    if (py_live && !py_in_call) {
        PyOS_AfterFork_Parent();
        py_main = PyEval_SaveThread();
    }
}

static void at_child(void)
{
    if (py_live && !py_in_call) {
        PyOS_AfterFork_Child();
        py_main = PyEval_SaveThread();
    }
}

/* interned environ keys and constant values */
static PyObject *k_method, *k_script, *k_path, *k_query, *k_uri, *k_raw_uri, *k_ctype, *k_clen,
    *k_sname, *k_sport, *k_proto, *k_raddr, *k_rport, *k_software, *k_input;
static PyObject *s_empty, *s_http10, *s_http11;
static PyObject *filewrapper; /* the wsgi.file_wrapper class */

/* values that rarely change from one request to the next */
static struct {
    const char *name;
    PyObject *s;
} methods[] = {{"GET", NULL},    {"HEAD", NULL},    {"POST", NULL}, {"PUT", NULL},
               {"DELETE", NULL}, {"OPTIONS", NULL}, {"PATCH", NULL}};
static char sname_c[256];
static PyObject *sname_s;
static int sport_n = -1;
static PyObject *sport_s;
static char raddr_c[64];
static PyObject *raddr_s;

/* HTTP_* keys by header name (lower case), direct-mapped */
#define HKEYS 64
static struct hkey {
    size_t len;
    char name[48];
    PyObject *key;
} hkeys[HKEYS];

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

static wreq *free_wreqs;

/* objects the last request's app kept no reference to: reused */
static ReqObject *spare_sr, *spare_wr;
static InputObject *spare_inp;

static PyTypeObject StartResponseType, WriteType, InputType;

/* ======================= errors ======================= */

/* The exception as one line: "TypeName: message" (newlines folded). */
static void exc_summary(char *out, size_t cap)
{
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    const char *tn = t ? ((PyTypeObject *)t)->tp_name : "error";
    PyObject *s = v ? PyObject_Str(v) : NULL;
    const char *m = s ? PyUnicode_AsUTF8(s) : NULL;
    if (!m)
        PyErr_Clear();
    snprintf(out, cap, "%s%s%s", tn, m && *m ? ": " : "", m ? m : "");
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    Py_XDECREF(s);
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(tb);
}

/* The pending exception: one line through the server's log, the traceback
 * to sys.stderr (the error log); never to the client. PyErr_Print is not
 * used: it would exit the process on SystemExit and keep the traceback alive
 * in sys.last_traceback. */
static void log_exception(fh_req *r, const char *what)
{
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    if (tb && v)
        PyException_SetTraceback(v, tb);
    fh_log(r, "%s%s", what, t ? "; Python traceback follows" : "");
    if (t) {
        PyErr_Display(t, v, tb);
        PyErr_Clear();
    }
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(tb);
}

/* ======================= start_response and write ======================= */

static int is_tchar(Py_UCS4 c)
{
    return c < 128 && c > 32 && !strchr("\"(),/:;<=>?@[\\]{}", (int)c) && c != 127;
}

static int name_is(PyObject *name, const char *lower)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(name);
    if ((size_t)n != strlen(lower))
        return 0;
    int kind = PyUnicode_KIND(name);
    const void *d = PyUnicode_DATA(name);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, d, i);
        if (c >= 'A' && c <= 'Z')
            c += 32;
        if (c != (Py_UCS4)(unsigned char)lower[i])
            return 0;
    }
    return 1;
}

/* Check the headers (a list of (str, str)); remember Content-Length. */
static int check_headers(PyObject *headers, int64_t *declared)
{
    if (!PyList_Check(headers)) {
        PyErr_Format(PyExc_TypeError, "start_response: headers must be a list, not %.80s",
                     Py_TYPE(headers)->tp_name);
        return -1;
    }
    *declared = -1;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(headers); i++) {
        PyObject *h = PyList_GET_ITEM(headers, i);
        if (!PyTuple_Check(h) || PyTuple_GET_SIZE(h) != 2 ||
            !PyUnicode_Check(PyTuple_GET_ITEM(h, 0)) || !PyUnicode_Check(PyTuple_GET_ITEM(h, 1))) {
            PyErr_SetString(PyExc_TypeError,
                            "start_response: each header must be a (str, str) tuple");
            return -1;
        }
        PyObject *name = PyTuple_GET_ITEM(h, 0), *value = PyTuple_GET_ITEM(h, 1);
        Py_ssize_t nl = PyUnicode_GET_LENGTH(name), vl = PyUnicode_GET_LENGTH(value);
        int nk = PyUnicode_KIND(name), vk = PyUnicode_KIND(value);
        const void *nd = PyUnicode_DATA(name), *vd = PyUnicode_DATA(value);
        if (nl == 0) {
            PyErr_SetString(PyExc_ValueError, "start_response: empty header name");
            return -1;
        }
        for (Py_ssize_t k = 0; k < nl; k++)
            if (!is_tchar(PyUnicode_READ(nk, nd, k))) {
                PyErr_Format(PyExc_ValueError, "start_response: invalid header name %R", name);
                return -1;
            }
        for (Py_ssize_t k = 0; k < vl; k++) {
            Py_UCS4 c = PyUnicode_READ(vk, vd, k);
            if ((c < 0x20 && c != '\t') || c == 0x7f || c > 0xff) {
                PyErr_Format(PyExc_ValueError,
                             "start_response: invalid character U+%04X in the value of %R",
                             (unsigned)c, name);
                return -1;
            }
        }
        /* Hop-by-hop fields, Date and Server are the server's: fh_header
         * drops them with a log line, as for C apps and CGI (owned_hdr.c). */
        if (name_is(name, "content-length")) {
            /* the server's one Content-Length parser (src/http_parse.c,
             * compiled into wsgi.so) */
            int64_t v = -1;
            Py_ssize_t al = 0;
            const char *a = PyUnicode_IS_ASCII(value) ? PyUnicode_AsUTF8AndSize(value, &al) : NULL;
            if (!a && PyErr_Occurred())
                return -1;
            if (!a || http_parse_content_length(a, (size_t)al, &v) < 0)
                v = -1;
            if (v < 0 || (*declared >= 0 && *declared != v)) {
                PyErr_Format(PyExc_ValueError, "start_response: invalid Content-Length %R",
                             value);
                return -1;
            }
            *declared = v;
        }
    }
    return 0;
}

static PyObject *sr_call(PyObject *self, PyObject *args, PyObject *kw)
{
    static const char *kwlist[] = {"status", "headers", "exc_info", NULL};
    wreq *q = ((ReqObject *)self)->q;
    PyObject *status, *headers, *exc_info = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "UO|O:start_response",
                                     (char **)(uintptr_t)kwlist, /* 3.11 wants char ** */
                                     &status, &headers, &exc_info))
        return NULL;
    if (!q) {
        PyErr_SetString(PyExc_RuntimeError, "start_response called after its request ended");
        return NULL;
    }
    if (exc_info != Py_None) {
        if (!PyTuple_Check(exc_info) || PyTuple_GET_SIZE(exc_info) != 3) {
            PyErr_SetString(PyExc_TypeError, "start_response: exc_info must be a 3-tuple");
            return NULL;
        }
        if (q->committed) {
            /* PEP 3333: the headers are out; re-raise the app's exception */
            PyObject *t = PyTuple_GET_ITEM(exc_info, 0), *v = PyTuple_GET_ITEM(exc_info, 1),
                     *tb = PyTuple_GET_ITEM(exc_info, 2);
            Py_INCREF(t);
            Py_INCREF(v);
            Py_INCREF(tb);
            PyErr_Restore(t, v, tb == Py_None ? NULL : tb);
            if (tb == Py_None)
                Py_DECREF(tb);
            return NULL;
        }
    } else if (q->started) {
        PyErr_SetString(PyExc_AssertionError,
                        "start_response called a second time without exc_info");
        return NULL;
    }
    /* "NNN Reason": the reason phrase is the server's own */
    Py_ssize_t sl = PyUnicode_GET_LENGTH(status);
    int kind = PyUnicode_KIND(status);
    const void *d = PyUnicode_DATA(status);
    int code = 0;
    for (Py_ssize_t i = 0; i < 3 && i < sl; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, d, i);
        code = c >= '0' && c <= '9' && code >= 0 ? code * 10 + (int)(c - '0') : -1;
    }
    if (sl < 3 || code < 0 || (sl > 3 && PyUnicode_READ(kind, d, 3) != ' ')) {
        PyErr_Format(PyExc_ValueError, "start_response: invalid status %R", status);
        return NULL;
    }
    if (code < 200 || code > 599) {
        PyErr_Format(PyExc_ValueError, "start_response: status %d is not in 200..599", code);
        return NULL;
    }
    int64_t declared;
    if (check_headers(headers, &declared) < 0)
        return NULL;
    q->status = code;
    Py_INCREF(headers);
    Py_XSETREF(q->headers, headers);
    q->declared = declared;
    q->started = 1;
    Py_INCREF(q->wr);
    return (PyObject *)q->wr;
}

/* write(data): the response head cannot leave before the app returns (the
 * server sends a response only once its handler is done), so the data is
 * kept and sent first, before the iterable's. */
static PyObject *wr_call(PyObject *self, PyObject *args, PyObject *kw)
{
    wreq *q = ((ReqObject *)self)->q;
    Py_buffer b;
    if (kw && PyDict_GET_SIZE(kw)) {
        PyErr_SetString(PyExc_TypeError, "write() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*:write", &b))
        return NULL;
    if (!q || !q->started) {
        PyBuffer_Release(&b);
        PyErr_SetString(PyExc_AssertionError, q ? "write() before start_response()"
                                                : "write() after its request ended");
        return NULL;
    }
    size_t n = (size_t)b.len;
    if (n && n > q->wcap - q->wlen) {
        size_t cap = q->wcap ? q->wcap : 4096;
        while (cap - q->wlen < n)
            cap *= 2;
        char *p = realloc(q->wbuf, cap);
        if (!p) {
            PyBuffer_Release(&b);
            return PyErr_NoMemory();
        }
        q->wbuf = p;
        q->wcap = cap;
    }
    if (n) {
        memcpy(q->wbuf + q->wlen, b.buf, n);
        q->wlen += n;
        q->committed = 1;
    }
    PyBuffer_Release(&b);
    Py_RETURN_NONE;
}

static void req_dealloc(PyObject *self)
{
    Py_TYPE(self)->tp_free(self);
}

static PyTypeObject StartResponseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "forkhttpd.StartResponse",
    .tp_basicsize = sizeof(ReqObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = req_dealloc,
    .tp_call = sr_call,
    .tp_doc = "start_response(status, headers, exc_info=None) -> write",
};

static PyTypeObject WriteType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "forkhttpd.Write",
    .tp_basicsize = sizeof(ReqObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = req_dealloc,
    .tp_call = wr_call,
    .tp_doc = "write(data): the PEP 3333 write() callable",
};

/* ======================= wsgi.input ======================= */

/* Refill the buffer: bytes now in it, 0 at the end of the body, -1 error. */
static ssize_t in_fill(InputObject *in)
{
    in->pos = in->len = 0;
    if (!in->q)
        return 0;
    ssize_t n = fh_read(in->q->r, in->buf, INBUF);
    if (n < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    in->len = (size_t)n;
    in->taken += n;
    return n;
}

static Py_ssize_t size_arg(PyObject *const *args, Py_ssize_t nargs, const char *fn, int *ok)
{
    *ok = 1;
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most 1 argument", fn);
        *ok = 0;
        return 0;
    }
    if (nargs == 0 || args[0] == Py_None)
        return -1;
    Py_ssize_t n = PyNumber_AsSsize_t(args[0], PyExc_OverflowError);
    if (n == -1 && PyErr_Occurred())
        *ok = 0;
    return n;
}

static PyObject *in_read(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    InputObject *in = (InputObject *)self;
    int ok;
    Py_ssize_t size = size_arg(args, nargs, "read", &ok);
    if (!ok)
        return NULL;
    if (!in->q)
        return PyBytes_FromStringAndSize(NULL, 0);
    /* at most what is left: the buffered bytes and the rest of the body
     * (bounded by --max-body), so read() never allocates more than that */
    size_t buffered = in->len - in->pos;
    int64_t rest = (int64_t)buffered + in->q->r->content_length - in->taken;
    if (rest < (int64_t)buffered)
        rest = (int64_t)buffered;
    size_t want = size < 0 || (int64_t)size > rest ? (size_t)rest : (size_t)size;
    if (want <= buffered) {
        PyObject *b = PyBytes_FromStringAndSize(in->buf + in->pos, (Py_ssize_t)want);
        if (b)
            in->pos += want;
        return b;
    }
    PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)want);
    if (!b)
        return NULL;
    char *p = PyBytes_AS_STRING(b);
    memcpy(p, in->buf + in->pos, buffered);
    in->pos = in->len = 0;
    size_t got = buffered;
    while (got < want) {
        ssize_t n = fh_read(in->q->r, p + got, want - got);
        if (n < 0) {
            Py_DECREF(b);
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        if (n == 0)
            break;
        got += (size_t)n;
        in->taken += n;
    }
    if (got < want && _PyBytes_Resize(&b, (Py_ssize_t)got) < 0)
        return NULL;
    return b;
}

/* One line (up to and including '\n'), at most size bytes if size >= 0. */
static PyObject *readline_(InputObject *in, Py_ssize_t size)
{
    if (!in->q || size == 0)
        return PyBytes_FromStringAndSize(NULL, 0);
    if (in->pos == in->len && in_fill(in) < 0)
        return NULL;
    size_t lim = size < 0 ? (size_t)-1 : (size_t)size;
    /* the common case: the whole line is in the buffer */
    size_t avail = in->len - in->pos;
    char *nl = memchr(in->buf + in->pos, '\n', avail < lim ? avail : lim);
    if (nl || avail >= lim || avail == 0) {
        size_t n = nl ? (size_t)(nl - (in->buf + in->pos)) + 1 : (avail < lim ? avail : lim);
        PyObject *b = PyBytes_FromStringAndSize(in->buf + in->pos, (Py_ssize_t)n);
        if (b)
            in->pos += n;
        return b;
    }
    /* a line across buffers: collect the pieces */
    char *acc = NULL;
    size_t alen = 0, acap = 0;
    for (;;) {
        avail = in->len - in->pos;
        if (avail == 0) {
            ssize_t f = in_fill(in);
            if (f < 0) {
                free(acc);
                return NULL;
            }
            if (f == 0)
                break;
            avail = in->len;
        }
        size_t room = lim - alen;
        size_t take = avail < room ? avail : room;
        nl = memchr(in->buf + in->pos, '\n', take);
        if (nl)
            take = (size_t)(nl - (in->buf + in->pos)) + 1;
        if (alen + take > acap) {
            size_t cap = acap ? acap * 2 : 2 * INBUF;
            while (cap < alen + take)
                cap *= 2;
            char *p = realloc(acc, cap);
            if (!p) {
                free(acc);
                return PyErr_NoMemory();
            }
            acc = p;
            acap = cap;
        }
        memcpy(acc + alen, in->buf + in->pos, take);
        alen += take;
        in->pos += take;
        if (nl || alen >= lim)
            break;
    }
    PyObject *b = PyBytes_FromStringAndSize(acc, (Py_ssize_t)alen);
    free(acc);
    return b;
}

static PyObject *in_readline(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int ok;
    Py_ssize_t size = size_arg(args, nargs, "readline", &ok);
    return ok ? readline_((InputObject *)self, size) : NULL;
}

static PyObject *in_readlines(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int ok;
    Py_ssize_t hint = size_arg(args, nargs, "readlines", &ok);
    if (!ok)
        return NULL;
    PyObject *list = PyList_New(0);
    Py_ssize_t total = 0;
    while (list) {
        PyObject *line = readline_((InputObject *)self, -1);
        if (!line) {
            Py_CLEAR(list);
            break;
        }
        Py_ssize_t n = PyBytes_GET_SIZE(line);
        if (n == 0 || PyList_Append(list, line) < 0) {
            Py_DECREF(line);
            if (n != 0)
                Py_CLEAR(list);
            break;
        }
        Py_DECREF(line);
        total += n;
        if (hint > 0 && total >= hint)
            break;
    }
    return list;
}

static PyObject *in_next(PyObject *self)
{
    PyObject *line = readline_((InputObject *)self, -1);
    if (line && PyBytes_GET_SIZE(line) == 0) {
        Py_DECREF(line);
        return NULL; /* StopIteration */
    }
    return line;
}

static PyObject *in_iter(PyObject *self)
{
    Py_INCREF(self);
    return self;
}

static PyObject *in_close(PyObject *self, PyObject *unused)
{
    (void)unused;
    Py_RETURN_NONE;
}

static PyMethodDef in_methods[] = {
    {"read", (PyCFunction)(void (*)(void))in_read, METH_FASTCALL,
     "read(size=-1): up to size bytes of the request body (all that is left if -1)"},
    {"readline", (PyCFunction)(void (*)(void))in_readline, METH_FASTCALL,
     "readline(size=-1): the next line, '\\n' included"},
    {"readlines", (PyCFunction)(void (*)(void))in_readlines, METH_FASTCALL,
     "readlines(hint=-1): the remaining lines"},
    {"close", in_close, METH_NOARGS, "does nothing: the server owns the body"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject InputType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "forkhttpd.Input",
    .tp_basicsize = sizeof(InputObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = req_dealloc,
    .tp_iter = in_iter,
    .tp_iternext = in_next,
    .tp_methods = in_methods,
    .tp_doc = "wsgi.input: the request body, de-chunked, from the server's spool file",
};

/* ======================= the interpreter ======================= */

/* wsgi.file_wrapper: wsgiref's FileWrapper. A response that is one of these
 * over a regular file with fileno() is sent with sendfile() instead. */
static const char helper_src[] =
    "class FileWrapper:\n"
    "    def __init__(self, filelike, blksize=8192):\n"
    "        self.filelike = filelike\n"
    "        self.blksize = blksize\n"
    "        if hasattr(filelike, 'close'):\n"
    "            self.close = filelike.close\n"
    "    def __iter__(self):\n"
    "        return self\n"
    "    def __next__(self):\n"
    "        data = self.filelike.read(self.blksize)\n"
    "        if data:\n"
    "            return data\n"
    "        raise StopIteration\n";

static int intern(PyObject **o, const char *s)
{
    *o = PyUnicode_InternFromString(s);
    return *o ? 0 : -1;
}

static int globals_init(void)
{
    if (intern(&k_method, "REQUEST_METHOD") || intern(&k_script, "SCRIPT_NAME") ||
        intern(&k_path, "PATH_INFO") || intern(&k_query, "QUERY_STRING") ||
        intern(&k_uri, "REQUEST_URI") || intern(&k_raw_uri, "RAW_URI") ||
        intern(&k_ctype, "CONTENT_TYPE") || intern(&k_clen, "CONTENT_LENGTH") ||
        intern(&k_sname, "SERVER_NAME") || intern(&k_sport, "SERVER_PORT") ||
        intern(&k_proto, "SERVER_PROTOCOL") || intern(&k_raddr, "REMOTE_ADDR") ||
        intern(&k_rport, "REMOTE_PORT") || intern(&k_software, "SERVER_SOFTWARE") ||
        intern(&k_input, "wsgi.input") || intern(&s_empty, "") ||
        intern(&s_http10, "HTTP/1.0") || intern(&s_http11, "HTTP/1.1"))
        return -1;
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (intern(&methods[i].s, methods[i].name))
            return -1;
    if (PyType_Ready(&StartResponseType) < 0 || PyType_Ready(&WriteType) < 0 ||
        PyType_Ready(&InputType) < 0)
        return -1;
    PyObject *mod = PyModule_New("forkhttpd_wsgi");
    if (!mod)
        return -1;
    PyObject *d = PyModule_GetDict(mod); /* borrowed */
    if (PyDict_SetItemString(d, "__builtins__", PyEval_GetBuiltins()) < 0) {
        Py_DECREF(mod);
        return -1;
    }
    PyObject *r = PyRun_String(helper_src, Py_file_input, d, d);
    Py_XDECREF(r);
    filewrapper = r ? PyDict_GetItemString(d, "FileWrapper") : NULL;
    Py_XINCREF(filewrapper);
    Py_DECREF(mod);
    return filewrapper ? 0 : -1;
}

/* Start the interpreter in this process: Debian's python3.11 (never a
 * python3 found on PATH), no signal handlers of its own (the server's stay),
 * unbuffered stdio (a forked child leaves with _exit), sys.path headed by the
 * --pythonpath dirs, then the current directory (as gunicorn does). */
static int python_start(const struct fh_api *api, const char *paths, const char *dir)
{
    /* The C extension modules of lib-dynload expect libpython's symbols to be
     * global; the server dlopen()ed us RTLD_LOCAL, so promote libpython. */
    Dl_info di;
    if (dladdr((void *)(uintptr_t)&Py_InitializeFromConfig, &di) && di.dli_fname &&
        !dlopen(di.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD))
        fh_api_log(api, "cannot make %s global: %s", di.dli_fname, dlerror());
    if (dir && chdir(dir) < 0) {
        fh_api_log(api, "--chdir %s: %s", dir, strerror(errno));
        return -1;
    }
    PyConfig c;
    PyConfig_InitPythonConfig(&c);
    c.install_signal_handlers = 0;
    c.buffered_stdio = 0;
    c.parse_argv = 0;
    char *argv[] = {(char *)(uintptr_t) "forkhttpd", NULL};
    PyStatus st = PyConfig_SetBytesString(&c, &c.program_name, FH_PYTHON_EXE);
    if (!PyStatus_Exception(st))
        st = PyConfig_SetBytesArgv(&c, 1, argv);
    if (!PyStatus_Exception(st))
        st = Py_InitializeFromConfig(&c);
    PyConfig_Clear(&c);
    if (PyStatus_Exception(st)) {
        fh_api_log(api, "cannot start Python: %s%s%s", st.func ? st.func : "",
                   st.func ? ": " : "", st.err_msg ? st.err_msg : "exit requested");
        return -1;
    }
    py_live = 1;
    py_in_call = 1;
    py_owner = getpid();
    if (!atfork_done) { /* inherited by forked children with the rest */
        pthread_atfork(at_prepare, at_parent, at_child);
        atfork_done = 1;
    }
    char cwd[4096];
    PyObject *path = PySys_GetObject("path"); /* borrowed */
    int rc = path && getcwd(cwd, sizeof cwd) ? 0 : -1;
    PyObject *s = rc == 0 ? PyUnicode_DecodeFSDefault(cwd) : NULL;
    if (!s || PyList_Insert(path, 0, s) < 0)
        rc = -1;
    Py_XDECREF(s);
    Py_ssize_t at = 0;
    for (const char *p = paths; rc == 0 && p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        s = PyUnicode_DecodeFSDefaultAndSize(p, (Py_ssize_t)n);
        if (!s || PyList_Insert(path, at++, s) < 0)
            rc = -1;
        Py_XDECREF(s);
        p += n + (nl ? 1 : 0);
    }
    if (rc == 0)
        rc = globals_init();
    if (rc < 0) {
        char why[512];
        exc_summary(why, sizeof why);
        fh_api_log(api, "cannot set up Python: %s", why);
    }
    return rc;
}

/* ======================= init / fini ======================= */

struct opts {
    char spec[512];
    char model[32];
    int multiprocess;
    char *paths; /* "DIR\nDIR\n" */
    char *dir;
};

/* The mount argument: "module:callable\nmodel=M\nmultiprocess=N\n
 * [pythonpath=DIR\n...][chdir=DIR\n]" (config.c). */
static int parse_arg(const char *arg, struct opts *o)
{
    memset(o, 0, sizeof *o);
    const char *p = arg;
    size_t plen = 0, pcap = strlen(arg) + 1;
    o->paths = calloc(1, pcap);
    if (!o->paths)
        return -1;
    for (int line = 0; *p; line++) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (line == 0) {
            if (n >= sizeof o->spec)
                return -1;
            memcpy(o->spec, p, n);
        } else if (n > 6 && !strncmp(p, "model=", 6) && n - 6 < sizeof o->model) {
            memcpy(o->model, p + 6, n - 6);
        } else if (n > 13 && !strncmp(p, "multiprocess=", 13)) {
            o->multiprocess = p[13] == '1';
        } else if (n > 11 && !strncmp(p, "pythonpath=", 11)) {
            memcpy(o->paths + plen, p + 11, n - 11);
            plen += n - 11;
            o->paths[plen++] = '\n';
        } else if (n > 6 && !strncmp(p, "chdir=", 6)) {
            free(o->dir);
            o->dir = strndup(p + 6, n - 6);
        }
        p += n + (nl ? 1 : 0);
    }
    return o->spec[0] ? 0 : -1;
}

static void inst_free(struct inst *in)
{
    if (!in)
        return;
    Py_XDECREF(in->app);
    Py_XDECREF(in->env0);
    Py_XDECREF(in->script);
    free(in->script_c);
    free(in->spec);
    free(in);
}

/* d[k] = v, taking v's reference; -1 if v is NULL or on error. */
static int set_str(PyObject *d, const char *k, PyObject *v)
{
    if (!v)
        return -1;
    int rc = PyDict_SetItemString(d, k, v);
    Py_DECREF(v);
    return rc;
}

/* Import the module, find the callable, build the environ template. */
static struct inst *inst_new(const struct fh_api *api, const struct opts *o)
{
    char why[512];
    struct inst *in = calloc(1, sizeof *in);
    if (!in || !(in->spec = strdup(o->spec))) {
        free(in);
        fh_api_log(api, "out of memory");
        return NULL;
    }
    const char *colon = strchr(o->spec, ':');
    PyObject *modname = PyUnicode_FromStringAndSize(o->spec, colon - o->spec);
    PyObject *mod = modname ? PyImport_Import(modname) : NULL;
    Py_XDECREF(modname);
    if (!mod) {
        exc_summary(why, sizeof why);
        fh_api_log(api, "cannot import module '%.*s': %s", (int)(colon - o->spec), o->spec, why);
        goto fail;
    }
    /* the callable may be a dotted attribute path: "module:obj.attr" */
    PyObject *obj = mod;
    for (const char *a = colon + 1; obj && *a;) {
        const char *dot = strchr(a, '.');
        size_t n = dot ? (size_t)(dot - a) : strlen(a);
        PyObject *name = PyUnicode_FromStringAndSize(a, (Py_ssize_t)n);
        PyObject *next = name ? PyObject_GetAttr(obj, name) : NULL;
        Py_XDECREF(name);
        Py_DECREF(obj);
        obj = next;
        a += n + (dot ? 1 : 0);
    }
    if (!obj) {
        exc_summary(why, sizeof why);
        fh_api_log(api, "no callable '%s' in module '%.*s': %s", colon + 1,
                   (int)(colon - o->spec), o->spec, why);
        goto fail;
    }
    if (!PyCallable_Check(obj)) {
        fh_api_log(api, "'%s' is a %s, not a callable", o->spec, Py_TYPE(obj)->tp_name);
        Py_DECREF(obj);
        goto fail;
    }
    in->app = obj;

    /* the keys every request has with the same value */
    PyObject *e = in->env0 = PyDict_New();
    PyObject *err = PySys_GetObject("stderr"); /* borrowed: wsgi.errors is the error log */
    int rc = e && err ? 0 : -1;
    if (rc == 0)
        rc = set_str(e, "wsgi.version", Py_BuildValue("(ii)", 1, 0)) |
             set_str(e, "wsgi.url_scheme", PyUnicode_InternFromString("http")) |
             set_str(e, "wsgi.errors", Py_NewRef(err)) |
             set_str(e, "wsgi.multithread", Py_NewRef(Py_False)) |
             set_str(e, "wsgi.multiprocess", Py_NewRef(o->multiprocess ? Py_True : Py_False)) |
             set_str(e, "wsgi.run_once", Py_NewRef(Py_False)) |
             set_str(e, "wsgi.file_wrapper", Py_NewRef(filewrapper)) |
             set_str(e, "GATEWAY_INTERFACE", PyUnicode_InternFromString("CGI/1.1"));
    if (rc != 0 || PyErr_Occurred()) {
        exc_summary(why, sizeof why);
        fh_api_log(api, "cannot build the environ: %s", why);
        goto fail;
    }
    return in;
fail:
    inst_free(in);
    return NULL;
}

int app_init(const struct fh_api *api, void **state)
{
    const char *arg = fh_mount_arg(api, NULL, NULL);
    struct opts o;
    if (!arg || parse_arg(arg, &o) < 0 || !strchr(o.spec, ':')) {
        fh_api_log(api, "no module:callable to serve: mount wsgi.so with --wsgi MODULE:CALLABLE");
        if (arg)
            free(o.paths), free(o.dir);
        return 1;
    }
    int rc = 1;
    if (!py_live) {
        if (python_start(api, o.paths, o.dir) < 0) {
            if (py_live) /* stay usable for a fini; the app itself failed */
                gil_drop();
            goto out;
        }
    } else {
        gil_take();
    }
    struct inst *in = inst_new(api, &o);
    if (in) {
        /* What the import built lives as long as the process: move it out of
         * the collector's reach (gc.freeze), so a collection in a forked
         * child does not write to, and so copy, every inherited page. */
        PyObject *gc = PyImport_ImportModule("gc");
        PyObject *x = gc ? PyObject_CallMethod(gc, "collect", NULL) : NULL;
        Py_XDECREF(x);
        x = gc ? PyObject_CallMethod(gc, "freeze", NULL) : NULL;
        Py_XDECREF(x);
        Py_XDECREF(gc);
        PyErr_Clear();
    }
    gil_drop();
    if (in) {
        *state = in;
        py_users++;
        rc = 0;
    }
out:
    free(o.paths);
    free(o.dir);
    return rc;
}

static void spare_free(void)
{
    Py_CLEAR(spare_sr);
    Py_CLEAR(spare_wr);
    Py_CLEAR(spare_inp);
}

static void wreq_pool_free(void)
{
    while (free_wreqs) {
        wreq *q = free_wreqs;
        free_wreqs = q->next_free;
        free(q);
    }
}

/* The interpreter is finalised where it makes sense: in the process that
 * started it and in prefork/event workers (atexit handlers run there as in
 * gunicorn's workers), but not in the fork model's per-connection children,
 * which only _exit() and would pay milliseconds per connection for it. */
void app_fini(const struct fh_api *api, void *state)
{
    const char *arg = fh_mount_arg(api, NULL, NULL);
    int fork_child = arg && strstr(arg, "\nmodel=fork\n") && getpid() != py_owner;
    if (!py_live || fork_child)
        return; /* a fork-model child: it _exit()s next, nothing to tidy */
    gil_take();
    inst_free(state);
    if (--py_users > 0) {
        gil_drop();
        return;
    }
    spare_free();
    wreq_pool_free();
    py_in_call = 0;
    py_live = 0;
    if (Py_FinalizeEx() < 0)
        fh_api_log(api, "Python's finalisation reported an error");
}

/* ======================= the environ ======================= */

static PyObject *latin1(struct fh_str s)
{
    if (!s.ptr || !s.len) {
        Py_INCREF(s_empty);
        return s_empty;
    }
    return PyUnicode_DecodeLatin1(s.ptr, (Py_ssize_t)s.len, NULL);
}

static int set_new(PyObject *d, PyObject *k, PyObject *v)
{
    if (!v)
        return -1;
    int rc = PyDict_SetItem(d, k, v);
    Py_DECREF(v);
    return rc;
}

static PyObject *method_str(struct fh_str m)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (strlen(methods[i].name) == m.len && !memcmp(methods[i].name, m.ptr, m.len)) {
            Py_INCREF(methods[i].s);
            return methods[i].s;
        }
    return latin1(m);
}

/* A cached str for a C string that rarely changes (SERVER_NAME, REMOTE_ADDR). */
static PyObject *cached(const char *v, char *c, size_t cap, PyObject **s)
{
    if (!*s || strcmp(c, v) != 0) {
        PyObject *n = PyUnicode_DecodeLatin1(v, (Py_ssize_t)strlen(v), NULL);
        if (!n)
            return NULL;
        Py_XSETREF(*s, n);
        snprintf(c, cap, "%s", strlen(v) < cap ? v : "");
    }
    Py_INCREF(*s);
    return *s;
}

static PyObject *port_str(int port, int *n, PyObject **s)
{
    if (!*s || *n != port) {
        PyObject *v = PyUnicode_FromFormat("%d", port);
        if (!v)
            return NULL;
        Py_XSETREF(*s, v);
        *n = port;
    }
    Py_INCREF(*s);
    return *s;
}

/* The interned key for an HTTP_* variable name (from fh_env_at, which
 * applies the server's rules: src/environ.h). */
static PyObject *http_key(const char *var)
{
    unsigned h = 2166136261u;
    size_t n = 0;
    for (; var[n]; n++)
        h = (h ^ (unsigned char)var[n]) * 16777619u;
    struct hkey *e = &hkeys[h % HKEYS];
    if (e->key && e->len == n && !memcmp(e->name, var, n)) {
        Py_INCREF(e->key);
        return e->key;
    }
    PyObject *k = PyUnicode_InternFromString(var);
    if (!k)
        return NULL;
    if (n < sizeof e->name) {
        Py_INCREF(k);
        Py_XSETREF(e->key, k);
        e->len = n;
        memcpy(e->name, var, n);
    }
    return k;
}

static PyObject *latin1_c(const char *v)
{
    return PyUnicode_DecodeLatin1(v, (Py_ssize_t)strlen(v), NULL);
}

static PyObject *build_environ(wreq *q)
{
    fh_req *r = q->r;
    struct inst *in = q->in;
    if (!in->software_set) { /* the server's name and version, asked once */
        const char *sw = fh_env(r, "SERVER_SOFTWARE");
        if (sw && set_new(in->env0, k_software, PyUnicode_FromString(sw)) < 0)
            return NULL;
        in->software_set = 1;
    }
    PyObject *e = PyDict_Copy(in->env0);
    if (!e)
        return NULL;
    if (!in->script || in->script_len != r->script_name.len ||
        memcmp(in->script_c, r->script_name.ptr, r->script_name.len) != 0) {
        PyObject *s = latin1(r->script_name);
        char *c = malloc(r->script_name.len + 1);
        if (!s || !c) {
            Py_XDECREF(s);
            free(c);
            goto fail;
        }
        memcpy(c, r->script_name.ptr, r->script_name.len);
        Py_XSETREF(in->script, s);
        free(in->script_c);
        in->script_c = c;
        in->script_len = r->script_name.len;
    }
    int port = 0, rport = 0;
    const char *sname = fh_server_name(r, &port);
    const char *raddr = fh_remote_addr(r, &rport);
    if (PyDict_SetItem(e, k_script, in->script) < 0 ||
        set_new(e, k_method, method_str(r->method)) < 0 ||
        set_new(e, k_path, latin1(r->path_info)) < 0 ||
        set_new(e, k_query, latin1(r->query)) < 0 ||
        PyDict_SetItem(e, k_proto, r->protocol.len == 8 && r->protocol.ptr[7] == '0'
                                       ? s_http10 : s_http11) < 0 ||
        set_new(e, k_sname, cached(sname, sname_c, sizeof sname_c, &sname_s)) < 0 ||
        set_new(e, k_sport, port_str(port, &sport_n, &sport_s)) < 0 ||
        set_new(e, k_raddr, cached(raddr, raddr_c, sizeof raddr_c, &raddr_s)) < 0 ||
        set_new(e, k_rport, PyUnicode_FromFormat("%d", rport)) < 0 ||
        PyDict_SetItem(e, k_input, (PyObject *)q->inp) < 0)
        goto fail;
    PyObject *uri = latin1(r->target);
    if (!uri || PyDict_SetItem(e, k_uri, uri) < 0 || PyDict_SetItem(e, k_raw_uri, uri) < 0) {
        Py_XDECREF(uri);
        goto fail;
    }
    Py_DECREF(uri);

    /* CONTENT_TYPE, CONTENT_LENGTH and HTTP_*: exactly what the server gives
     * C apps and CGI (fh_env_at: no Proxy, no '_' in names, no framing
     * fields, repeated fields joined; src/environ.h) */
    const char *n, *v;
    for (size_t i = 0; fh_env_at(r, i, &n, &v) == 0; i++) {
        PyObject *k;
        if (n[0] == 'H' && !strncmp(n, "HTTP_", 5)) {
            k = http_key(n);
            if (!k)
                goto fail;
        } else if (!strcmp(n, "CONTENT_TYPE")) {
            k = k_ctype;
            Py_INCREF(k);
        } else if (!strcmp(n, "CONTENT_LENGTH")) {
            k = k_clen;
            Py_INCREF(k);
        } else {
            continue; /* the others come from the request's fields above */
        }
        int rc = set_new(e, k, latin1_c(v));
        Py_DECREF(k);
        if (rc < 0)
            goto fail;
    }
    return e;
fail:
    Py_DECREF(e);
    return NULL;
}

/* ======================= the request ======================= */

static ReqObject *req_obj(PyTypeObject *t, ReqObject **spare, wreq *q)
{
    ReqObject *o = *spare;
    if (o)
        *spare = NULL;
    else if (!(o = PyObject_New(ReqObject, t)))
        return NULL;
    o->q = q;
    return o;
}

static wreq *wreq_new(fh_req *r, struct inst *in)
{
    wreq *q = free_wreqs;
    if (q)
        free_wreqs = q->next_free;
    else if (!(q = malloc(sizeof *q)))
        return NULL;
    memset(q, 0, sizeof *q);
    q->r = r;
    q->in = in;
    q->declared = -1;
    q->status = 200;
    q->sr = req_obj(&StartResponseType, &spare_sr, q);
    q->wr = req_obj(&WriteType, &spare_wr, q);
    if (spare_inp) {
        q->inp = spare_inp;
        spare_inp = NULL;
    } else {
        q->inp = PyObject_New(InputObject, &InputType);
    }
    if (q->inp) {
        q->inp->q = q;
        q->inp->pos = q->inp->len = 0;
        q->inp->taken = 0;
    }
    return q;
}

/* Give an object back: kept for the next request if nobody else holds it. */
static void give_back(PyObject **o, PyObject **spare)
{
    if (!*o)
        return;
    if (!*spare && Py_REFCNT(*o) == 1)
        *spare = *o;
    else
        Py_DECREF(*o);
    *o = NULL;
}

/* The request is over: close() the iterable (PEP 3333: exactly once, also on
 * an error or a disconnect), cut the objects the app may have kept loose
 * from it, and free it. With the GIL held. */
static void wreq_end(wreq *q)
{
    if (q->result) {
        PyObject *cl = PyObject_GetAttrString(q->result, "close");
        if (cl) {
            PyObject *x = PyObject_CallNoArgs(cl);
            Py_DECREF(cl);
            if (!x)
                log_exception(q->r, "the WSGI iterable's close() raised");
            Py_XDECREF(x);
        } else if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
            PyErr_Clear();
        } else {
            log_exception(q->r, "the WSGI iterable's close attribute raised");
        }
    }
    Py_CLEAR(q->result);
    Py_CLEAR(q->iter);
    Py_CLEAR(q->seq);
    Py_CLEAR(q->cur);
    Py_CLEAR(q->headers);
    if (q->sr)
        q->sr->q = NULL;
    if (q->wr)
        q->wr->q = NULL;
    if (q->inp)
        q->inp->q = NULL;
    give_back((PyObject **)&q->sr, (PyObject **)&spare_sr);
    give_back((PyObject **)&q->wr, (PyObject **)&spare_wr);
    give_back((PyObject **)&q->inp, (PyObject **)&spare_inp);
    free(q->wbuf);
    q->next_free = free_wreqs;
    free_wreqs = q;
}

/* The status and headers, for real now. -1 with a Python exception. */
static int commit_head(wreq *q)
{
    fh_req *r = q->r;
    if (fh_status(r, q->status) < 0) {
        PyErr_Format(PyExc_ValueError, "status %d refused by the server", q->status);
        return -1;
    }
    PyObject *hs = q->headers;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(hs); i++) {
        PyObject *h = PyList_GET_ITEM(hs, i);
        if (!PyTuple_Check(h) || PyTuple_GET_SIZE(h) != 2) {
            PyErr_SetString(PyExc_TypeError, "the headers list changed after start_response");
            return -1;
        }
        PyObject *name = PyTuple_GET_ITEM(h, 0), *value = PyTuple_GET_ITEM(h, 1);
        if (!PyUnicode_Check(name) || !PyUnicode_Check(value)) {
            PyErr_SetString(PyExc_TypeError, "the headers list changed after start_response");
            return -1;
        }
        /* written below from the body (content_length()); the fields the
         * server owns (Date, Server, hop-by-hop) go to fh_header, which
         * drops them with a log line, as for every app and CGI */
        if (name_is(name, "content-length"))
            continue;
        const char *nc = PyUnicode_AsUTF8(name); /* ASCII: checked in start_response */
        if (!nc)
            return -1;
        PyObject *enc = NULL;
        const char *vc;
        if (PyUnicode_IS_ASCII(value)) {
            vc = PyUnicode_AsUTF8(value); /* for ASCII: the str's own bytes */
        } else {
            enc = PyUnicode_AsLatin1String(value);
            vc = enc ? PyBytes_AS_STRING(enc) : NULL;
        }
        if (!vc)
            return -1;
        int rc = fh_header(r, nc, vc);
        Py_XDECREF(enc);
        if (rc < 0) {
            PyErr_Format(PyExc_ValueError, "header %R refused by the server", name);
            return -1;
        }
    }
    return 0;
}

static int content_length(wreq *q)
{
    char num[24];
    snprintf(num, sizeof num, "%lld", (long long)q->declared);
    if (fh_header(q->r, "Content-Length", num) < 0) {
        PyErr_SetString(PyExc_ValueError, "Content-Length refused by the server");
        return -1;
    }
    return 0;
}

/* ---- the stream: pulled by the server when the socket can take more ---- */

/* The next non-empty piece of the body into q->cur: 1, 0 at the end, -1
 * with an exception. */
static int next_piece(wreq *q)
{
    for (;;) {
        PyObject *item;
        if (q->seq) {
            if (q->seq_i >= PySequence_Fast_GET_SIZE(q->seq))
                return 0;
            item = PySequence_Fast_GET_ITEM(q->seq, q->seq_i++);
            Py_INCREF(item);
        } else {
            item = PyIter_Next(q->iter);
            if (!item)
                return PyErr_Occurred() ? -1 : 0;
        }
        if (!PyBytes_Check(item)) {
            PyErr_Format(PyExc_TypeError, "the WSGI iterable yielded %.80s, not bytes",
                         Py_TYPE(item)->tp_name);
            Py_DECREF(item);
            return -1;
        }
        if (PyBytes_GET_SIZE(item) == 0) {
            Py_DECREF(item);
            continue;
        }
        Py_XSETREF(q->cur, item);
        q->cur_off = 0;
        return 1;
    }
}

static ssize_t wsgi_read(void *ctx, char *buf, size_t cap, int *wait_fd)
{
    wreq *q = ctx;
    (void)wait_fd;
    size_t n = 0;
    if (q->woff < q->wlen) { /* write() data first */
        n = q->wlen - q->woff < cap ? q->wlen - q->woff : cap;
        memcpy(buf, q->wbuf + q->woff, n);
        q->woff += n;
        return (ssize_t)n;
    }
    gil_take();
    while (n < cap) {
        if (!q->cur || q->cur_off == PyBytes_GET_SIZE(q->cur)) {
            /* next() only with nothing in hand: a block is never held back
             * while the app works on the next one (PEP 3333) */
            if (n > 0 && !q->seq)
                break;
            int k = next_piece(q);
            if (k < 0) {
                log_exception(q->r, "the WSGI iterable raised while streaming; aborting");
                gil_drop();
                return -1;
            }
            if (k == 0)
                break;
            q->committed = 1;
        }
        size_t take = (size_t)(PyBytes_GET_SIZE(q->cur) - q->cur_off);
        if (take > cap - n)
            take = cap - n;
        memcpy(buf + n, PyBytes_AS_STRING(q->cur) + q->cur_off, take);
        q->cur_off += (Py_ssize_t)take;
        n += take;
    }
    gil_drop();
    return (ssize_t)n;
}

/* Also called from inside fh_stream() when that refuses (GIL held then). */
static void wsgi_close(void *ctx)
{
    int held = py_in_call;
    if (!held)
        gil_take();
    wreq_end(ctx);
    if (!held)
        gil_drop();
}

/* HEAD with the app's Content-Length: the server sends the head with that
 * length and never pulls the body. */
static ssize_t head_read(void *ctx, char *buf, size_t cap, int *wait_fd)
{
    (void)ctx, (void)buf, (void)cap, (void)wait_fd;
    return -1;
}

/* wsgi.file_wrapper over a regular file: sendfile from its position. 1 sent
 * this way, 0 not applicable (iterate it instead), -1 error. */
static int try_sendfile(wreq *q)
{
    if (q->wlen || !q->started || Py_TYPE(q->result) != (PyTypeObject *)filewrapper)
        return 0; /* the generic path reports a missing start_response */
    PyObject *f = PyObject_GetAttrString(q->result, "filelike");
    PyObject *fdo = f ? PyObject_CallMethod(f, "fileno", NULL) : NULL;
    int fd = fdo ? PyLong_AsLong(fdo) : -1;
    Py_XDECREF(fdo);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        Py_XDECREF(f);
        PyErr_Clear();
        return 0;
    }
    /* the file object's position (it may have read ahead into its buffer) */
    PyObject *to = PyObject_CallMethod(f, "tell", NULL);
    long long pos = to ? PyLong_AsLongLong(to) : -1;
    Py_XDECREF(to);
    Py_DECREF(f);
    if (pos < 0) {
        PyErr_Clear();
        pos = lseek(fd, 0, SEEK_CUR);
    }
    if (pos < 0 || pos > st.st_size)
        return 0;
    long long len = st.st_size - pos;
    if (q->declared >= 0 && q->declared < len)
        len = q->declared; /* never more than the app's Content-Length */
    q->committed = 1;
    if (commit_head(q) < 0)
        return -1;
    int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    if (fh_sendfile(q->r, dup_fd, pos, len) < 0) { /* it owns dup_fd either way */
        PyErr_SetString(PyExc_ValueError, "sendfile refused by the server");
        return -1;
    }
    return 1;
}

/* Turn what the app returned into the response. Until the first non-empty
 * piece exists, an error undoes everything: the request becomes a 500.
 * DONE: the response is set; FAIL: a Python exception is pending (the caller
 * logs it and answers 500); STREAMING: the server now owns q (wsgi_read,
 * then wsgi_close ends it). */
enum { DONE, FAIL, STREAMING, GO_ON };

/* Once the first body piece is known (or that there is none): the app must
 * have called start_response; the head is committed. A HEAD request with a
 * declared length is answered here (DONE). FAIL, or GO_ON to send the body. */
static int begin_body(wreq *q, int head, int nonempty)
{
    if (!q->started) {
        PyErr_SetString(PyExc_AssertionError, "the WSGI app never called start_response");
        return FAIL;
    }
    if (nonempty)
        q->committed = 1;
    if (commit_head(q) < 0)
        return FAIL;
    if (head && q->declared >= 0) {
        if (content_length(q) < 0 || fh_stream(q->r, head_read, NULL, NULL, -1) < 0)
            return FAIL;
        return DONE;
    }
    if (q->declared >= 0 && content_length(q) < 0)
        return FAIL;
    return GO_ON;
}

static int respond(wreq *q, PyObject *result)
{
    fh_req *r = q->r;
    int head = r->method.len == 4 && !memcmp(r->method.ptr, "HEAD", 4);
    q->result = result;
    if (q->status == 204 || q->status == 304)
        q->declared = -1; /* no body: the server frames it (a 304's length is not ours) */
    if (PyBytes_Check(result) || PyUnicode_Check(result)) {
        PyErr_Format(PyExc_TypeError,
                     "the WSGI app returned %.80s: return an iterable of bytes (e.g. [body])",
                     Py_TYPE(result)->tp_name);
        return FAIL;
    }
    int k = try_sendfile(q);
    if (k)
        return k > 0 ? DONE : FAIL;
    /* Lists and tuples: everything is here already. */
    if (PyList_CheckExact(result) || PyTuple_CheckExact(result)) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(result);
        int64_t total = (int64_t)q->wlen;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *it = PySequence_Fast_GET_ITEM(result, i);
            if (!PyBytes_Check(it)) {
                PyErr_Format(PyExc_TypeError, "the WSGI iterable holds %.80s, not bytes",
                             Py_TYPE(it)->tp_name);
                return FAIL;
            }
            total += PyBytes_GET_SIZE(it);
        }
        int b = begin_body(q, head, total != 0);
        if (b != GO_ON)
            return b;
        if (total <= (1 << 20)) { /* one copy into memory the server owns */
            if (q->wlen && fh_write(r, q->wbuf, q->wlen) < 0)
                return FAIL;
            for (Py_ssize_t i = 0; i < n; i++) {
                PyObject *it = PySequence_Fast_GET_ITEM(result, i);
                if (PyBytes_GET_SIZE(it) &&
                    fh_write(r, PyBytes_AS_STRING(it), (size_t)PyBytes_GET_SIZE(it)) < 0) {
                    PyErr_SetString(PyExc_MemoryError, "the server refused the body");
                    return FAIL;
                }
            }
            return DONE; /* total 0: no body call is an empty body */
        }
        /* big: streamed from the objects themselves, no copy of the whole */
        Py_INCREF(result);
        q->seq = result;
        fh_stream(r, wsgi_read, wsgi_close, q, total); /* on failure close ran: q is gone */
        return STREAMING;
    }
    /* Any other iterable: pull until the first non-empty piece (the app may
     * call start_response from inside it), then stream the rest. */
    q->iter = PyObject_GetIter(result);
    if (!q->iter)
        return FAIL;
    int got = q->wlen ? 1 : 0;
    if (!got) {
        got = next_piece(q);
        if (got < 0)
            return FAIL;
    }
    int b = begin_body(q, head, got);
    if (b != GO_ON)
        return b;
    if (!got)
        return DONE; /* an empty body */
    /* The whole declared length in hand: done, no need to iterate further
     * (PEP 3333 lets a server stop at Content-Length). */
    if (!q->wlen && q->declared >= 0 && PyBytes_GET_SIZE(q->cur) >= q->declared) {
        if (fh_write(r, PyBytes_AS_STRING(q->cur), (size_t)q->declared) < 0)
            return FAIL;
        return DONE;
    }
    fh_stream(r, wsgi_read, wsgi_close, q, -1); /* wsgi_close ends q, also on failure */
    return STREAMING;
}

int app(fh_req *r)
{
    struct inst *in = r->state;
    if (!in)
        return 1;
    gil_take();
    wreq *q = wreq_new(r, in);
    if (!q || !q->sr || !q->wr || !q->inp) {
        fh_log(r, "out of memory");
        if (q)
            wreq_end(q);
        PyErr_Clear();
        gil_drop();
        return 1;
    }
    int rc = 0;
    PyObject *env = build_environ(q);
    PyObject *result = NULL;
    if (env) {
        PyObject *args[2] = {env, (PyObject *)q->sr};
        result = PyObject_Vectorcall(in->app, args, 2, NULL);
        Py_DECREF(env);
    }
    int k = result ? respond(q, result) : FAIL;
    if (k == FAIL) {
        log_exception(r, "the WSGI app raised an exception; answering 500");
        rc = 1;
    }
    if (k != STREAMING)
        wreq_end(q);
    gil_drop();
    return rc;
}
