/* body.c - what a WSGI app returned, as one body source for the server:
 * memory (lists and tuples up to 1 MiB), sendfile (wsgi.file_wrapper over a
 * regular file), or a pull stream (any other iterable, sent as it is
 * produced: wsgi_read() next()s it when the socket can take more,
 * wsgi_close() close()s it exactly once, also when the client went away). */
#include "wsgi_int.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
    int held = gil_held();
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

int respond(wreq *q, PyObject *result)
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
