/* environ.c - the WSGI environ (PEP 3333): a copy of a per-app template
 * holding the constant keys, plus the request's. Keys are interned once,
 * HTTP_* keys come from a small cache, and the values that rarely change
 * (method, SCRIPT_NAME, SERVER_NAME, REMOTE_ADDR, ports) are reused. The
 * variables themselves follow the server's one set of rules (fh_env_at:
 * src/environ.h), as for C apps and CGI. */
#include "wsgi_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* interned environ keys and constant values */
static PyObject *k_method, *k_script, *k_path, *k_query, *k_uri, *k_raw_uri, *k_ctype, *k_clen,
    *k_sname, *k_sport, *k_proto, *k_raddr, *k_rport, *k_software, *k_input;
static PyObject *s_empty, *s_http10, *s_http11;

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

static int intern(PyObject **o, const char *s)
{
    *o = PyUnicode_InternFromString(s);
    return *o ? 0 : -1;
}

int environ_init(void)
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
    return 0;
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

/* The keys every request has with the same value: the per-app template. */
PyObject *environ_template(int multiprocess, int multithread)
{
    PyObject *e = PyDict_New();
    PyObject *err = PySys_GetObject("stderr"); /* borrowed: wsgi.errors is the error log */
    int rc = e && err ? 0 : -1;
    if (rc == 0)
        rc = set_str(e, "wsgi.version", Py_BuildValue("(ii)", 1, 0)) |
             set_str(e, "wsgi.url_scheme", PyUnicode_InternFromString("http")) |
             set_str(e, "wsgi.errors", Py_NewRef(err)) |
             set_str(e, "wsgi.multithread", Py_NewRef(multithread ? Py_True : Py_False)) |
             set_str(e, "wsgi.multiprocess", Py_NewRef(multiprocess ? Py_True : Py_False)) |
             set_str(e, "wsgi.run_once", Py_NewRef(Py_False)) |
             set_str(e, "wsgi.file_wrapper", Py_NewRef(filewrapper)) |
             set_str(e, "GATEWAY_INTERFACE", PyUnicode_InternFromString("CGI/1.1"));
    if (rc != 0) {
        Py_XDECREF(e);
        return NULL;
    }
    return e;
}

/* ======================= the request's environ ======================= */

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

PyObject *build_environ(wreq *q)
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
    /* HTTPS (the server's TLS, docs/tls.md): the scheme, and mod_ssl's names */
    static const char *const tls_vars[] = {"HTTPS", "SSL_PROTOCOL", "SSL_CIPHER", "SSL_TLS_SNI"};
    for (size_t i = 0; i < sizeof tls_vars / sizeof tls_vars[0]; i++) {
        const char *tv = fh_env(r, tls_vars[i]);
        if (tv && set_str(e, tls_vars[i], latin1_c(tv)) < 0)
            goto fail;
        if (tv && i == 0 && set_str(e, "wsgi.url_scheme", PyUnicode_InternFromString("https")) < 0)
            goto fail;
    }
    return e;
fail:
    Py_DECREF(e);
    return NULL;
}

