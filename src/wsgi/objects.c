/* objects.c - the Python objects a WSGI request gets (PEP 3333):
 * start_response, write, wsgi.input and wsgi.file_wrapper; and the request
 * object behind them (wreq), with the objects reused when the app kept no
 * reference to them. */
#include "wsgi_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h" /* http_parse_content_length: src/http_parse.c is linked in */

PyObject *filewrapper; /* the wsgi.file_wrapper class */

static wreq *free_wreqs;

/* objects the last request's app kept no reference to: reused */
static ReqObject *spare_sr, *spare_wr;
static InputObject *spare_inp;

static PyTypeObject StartResponseType, WriteType, InputType;

/* ======================= start_response and write ======================= */

static int is_tchar(Py_UCS4 c)
{
    return c < 128 && c > 32 && !strchr("\"(),/:;<=>?@[\\]{}", (int)c) && c != 127;
}

int name_is(PyObject *name, const char *lower)
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

/* ======================= wsgi.file_wrapper ======================= */

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

int objects_init(void)
{
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

/* ======================= the request ======================= */

void spare_free(void)
{
    Py_CLEAR(spare_sr);
    Py_CLEAR(spare_wr);
    Py_CLEAR(spare_inp);
}

void wreq_pool_free(void)
{
    while (free_wreqs) {
        wreq *q = free_wreqs;
        free_wreqs = q->next_free;
        free(q);
    }
}

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

wreq *wreq_new(fh_req *r, struct inst *in)
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
void wreq_end(wreq *q)
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

