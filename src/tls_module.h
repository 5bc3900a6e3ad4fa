/* tls_module.h - what crosses between the core and build/tls.so (issue 19).
 *
 * HTTPS (src/tls.c, OpenSSL 3) is built as a module, tls.so, so that the
 * server binary links only libc (and libdl): a server without --tls-cert maps
 * no libssl/libcrypto, and the fork model forks a smaller process. The core's
 * unit tls_load.c implements tls.h: when TLS is configured it dlopen()s tls.so
 * from next to the server's binary (/proc/self/exe, links resolved) once, in
 * tls_setup() before any fork, and forwards every call through the table the
 * module's one exported symbol returns.
 *
 * The module reaches the core only through struct fh_tls_core, given to its
 * setup(): not through the binary's symbols (no -rdynamic). Exporting every
 * core symbol would grow the binary's dynamic symbol table (startup, fork)
 * and let names such as warn() or die() interpose on every library the
 * process loads (libpython, apps); the table is nine entries and tls.so is
 * linked with -z defs (make checks that it needs nothing else from us).
 *
 * Both sides are built from the same tree; FH_TLS_ABI changes whenever either
 * struct below (or the layout of struct conn / struct config the module reads)
 * changes, and the sizes are checked at load as a guard against a stale tls.so. */
#ifndef FH_TLS_MODULE_H
#define FH_TLS_MODULE_H

#include <stddef.h>

#define FH_TLS_ABI 2
#define FH_TLS_SYMBOL "fh_tls_module"

struct config;
struct conn;
struct sb_slot;
struct transport;
union net_addr;

/* What the core lends the module (pointers to its own globals: they are read
 * at each use, so a worker's sb_self or a changed log level is seen). */
struct fh_tls_core {
    const struct config *cfg;
    struct sb_slot *const *sb_self; /* this process's scoreboard slot, or NULL */
    const int *log_verbose_on;
    const struct transport *plain; /* the plain transport (plain HTTP on an HTTPS port) */
    void (*log_error)(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
    void (*log_info)(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
    void (*warn)(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
    void (*vlog)(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
    void (*addr_str)(const union net_addr *a, char *buf, size_t cap, int *port);
};

/* What the module exports: tls.h's calls, for a configured server. */
struct fh_tls_module {
    int abi;            /* FH_TLS_ABI */
    size_t conn_size;   /* sizeof(struct conn), as the module was built */
    size_t config_size; /* sizeof(struct config) */
    /* load certificates and keys: 0, or -1 after one line on stderr */
    int (*setup)(const struct fh_tls_core *core);
    void (*reload)(void);
    void (*free)(void);
    int (*attach)(struct conn *c);
};

/* The one symbol tls.so exports. */
typedef const struct fh_tls_module *fh_tls_module_fn(void);
const struct fh_tls_module *fh_tls_module(void);

#endif
