/* wsgi.c - PEP 3333: Python WSGI apps on forkhttpd (--wsgi [PREFIX=]module:callable).
 *
 * This is an ordinary app on the public C interface (include/forkhttpd_app.h),
 * built as build/wsgi.so and linked with libpython3.11; the server knows only
 * that --wsgi mounts "wsgi.so:app" with "module:callable" as the mount's
 * argument (fh_mount_arg). docs/wsgi.md is the user's side of it.
 *
 *   init     app_init()/app_fini() (interp.c): start the interpreter (once
 *            per process), import the module, find the callable, build the
 *            environ template (environ.c).
 *   request  app(), here: environ dict (environ.c) + start_response +
 *            wsgi.input (objects.c); call the app; turn what it returned into
 *            one body source (body.c): memory (lists), sendfile
 *            (wsgi.file_wrapper over a regular file), or a pull stream (any
 *            other iterable, sent as it is produced).
 *   stream   wsgi_read()/wsgi_close() (body.c): next() the iterable when the
 *            socket can take more; close() the iterable exactly once, also
 *            when the client went away.
 *   fork     pthread_atfork (interp.c): PyOS_BeforeFork/AfterFork_* around
 *            every fork of a process that runs Python.
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
#include "wsgi_int.h"

/* With --threads (event model) requests run on the worker's pool threads, as
 * in gunicorn's gthread worker: the GIL guards the interpreter, and each
 * thread has its own thread state (interp.c). WSGI apps are expected to be
 * thread-safe when wsgi.multithread is true (PEP 3333). */
const unsigned app_flags = FH_APP_THREAD_SAFE;

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
