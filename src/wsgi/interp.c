/* interp.c - the interpreter in this process, and each mount's life in it.
 *
 *   init     app_init(): start the interpreter (once per process), import the
 *            module, find the callable, build the environ template.
 *   fini     app_fini(): drop the mount; the last one finalises Python.
 *   fork     pthread_atfork: PyOS_BeforeFork/AfterFork_* around every fork of
 *            a process that runs Python (the preloading master, the fork
 *            model's parent), as os.fork() does.
 *
 * The GIL: a thread holds it only while Python code runs (init, a request, a
 * stream callback) and releases it between them, so threads an app starts
 * keep running while the server waits on the network. With --threads (event
 * model) requests run on the worker's pool threads, each with its own thread
 * state (gil_take); stream callbacks, init and fini run in the main thread. */
#include "wsgi_int.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef FH_PYTHON_EXE
#define FH_PYTHON_EXE "/usr/bin/python3.11"
#endif

/* ======================= per-process state ======================= */

static int py_live;            /* the interpreter is initialised in this process */
/* Per thread: the server's pool threads (--threads) each have their own
 * Python thread state, made on their first call and kept until the thread
 * ends (so threading.local, and Django's per-thread DB connections, last
 * across requests); the main thread's is the interpreter's first. */
static _Thread_local int py_in_call;         /* this thread holds the GIL (our code runs Python) */
static _Thread_local PyThreadState *py_main; /* this thread's state while the GIL is released */
static pid_t py_owner;         /* the process that initialised the interpreter */
static int py_users;           /* apps (mounts) whose init succeeded in this process */
static int atfork_done;
static pthread_key_t ts_key;   /* a pool thread's state, deleted when the thread ends */
static pthread_once_t ts_once = PTHREAD_ONCE_INIT;

static void ts_end(void *p)
{
    PyEval_RestoreThread(p);
    PyThreadState_Clear(p);
    PyThreadState_DeleteCurrent(); /* and the GIL goes */
}

static void ts_key_make(void)
{
    if (pthread_key_create(&ts_key, ts_end) != 0)
        abort(); /* only with no key left at all */
}

void gil_take(void)
{
    if (!py_main) { /* a pool thread's first call: its own state */
        pthread_once(&ts_once, ts_key_make);
        py_main = PyThreadState_New(PyInterpreterState_Main());
        if (!py_main)
            abort(); /* out of memory before any Python ran: nothing to answer with */
        pthread_setspecific(ts_key, py_main);
    }
    PyEval_RestoreThread(py_main);
    py_in_call = 1;
}

void gil_drop(void)
{
    py_in_call = 0;
    py_main = PyEval_SaveThread();
}

int gil_held(void)
{
    return py_in_call;
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
void log_exception(fh_req *r, const char *what)
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

/* ======================= the interpreter ======================= */

static int globals_init(void)
{
    return environ_init() < 0 || objects_init() < 0 ? -1 : 0;
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
    int multithread;
    char *paths; /* "DIR\nDIR\n" */
    char *dir;
};

/* The mount argument: "module:callable\nmodel=M\nmultiprocess=N\nmultithread=N\n
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
        } else if (n > 12 && !strncmp(p, "multithread=", 12)) {
            o->multithread = p[12] == '1';
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
    in->env0 = environ_template(o->multiprocess, o->multithread);
    if (!in->env0 || PyErr_Occurred()) {
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
