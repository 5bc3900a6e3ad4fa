/* tls_load.c - tls.h for the core: HTTPS lives in build/tls.so (src/tls.c,
 * linked with libssl/libcrypto), loaded only when --tls-cert is given (a /tls
 * listener and --redirect-https need one: config.c). See tls_module.h for the
 * interface and why the module gets a table of core callbacks rather than the
 * binary's symbols (-rdynamic).
 *
 * tls_setup() loads it in the master before any fork (every model's children
 * inherit the mapping and the contexts); without TLS nothing is loaded and
 * tls_reload/tls_free are no-ops, tls_attach fails (no TLS listener exists
 * then: transport.c never asks). */
#include "tls.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "module.h"
#include "conn.h"
#include "log.h"
#include "net.h"
#include "scoreboard.h"
#include "tls_module.h"
#include "transport.h"

static const struct fh_tls_module *mod; /* NULL: no TLS in this server */

static const struct fh_tls_core core = {
    .cfg = &cfg,
    .sb_self = &sb_self,
    .log_verbose_on = &log_verbose_on,
    .plain = &transport_plain,
    .log_error = log_error,
    .log_info = log_info,
    .warn = warn,
    .vlog = vlog,
    .addr_str = net_addr_str,
};

int tls_enabled(void)
{
    return cfg.ntls_cert > 0;
}

int tls_redirect_on(void)
{
    return cfg.redirect_https;
}

/* dlopen tls.so from the binary's directory: its table, or NULL after one line.
 * Never closed: OpenSSL keeps per-thread state and exit handlers. */
static const struct fh_tls_module *load(void)
{
    char path[PATH_MAX];
    void *dl;
    fh_tls_module_fn *get;
    *(void **)&get = module_open("HTTPS", "tls.so", "make; Debian libssl-dev", FH_TLS_SYMBOL,
                                 &dl, path, sizeof path);
    if (!get) {
        if (dl)
            dlclose(dl);
        return NULL;
    }
    const struct fh_tls_module *m = get();
    if (!m || m->abi != FH_TLS_ABI || m->conn_size != sizeof(struct conn) ||
        m->config_size != sizeof(struct config)) {
        fprintf(stderr, "forkhttpd: HTTPS: %s is not this server's module (%s); rebuild with make\n",
                path, !m ? "no table" : "another version");
        dlclose(dl);
        return NULL;
    }
    return m;
}

int tls_setup(void)
{
    if (!tls_enabled() || mod)
        return 0;
    const struct fh_tls_module *m = load();
    if (!m)
        return -1;
    if (m->setup(&core) < 0)
        return -1;
    mod = m;
    return 0;
}

void tls_reload(void)
{
    if (mod)
        mod->reload();
}

void tls_free(void)
{
    if (mod)
        mod->free();
}

int tls_attach(struct conn *c)
{
    return mod ? mod->attach(c) : -1;
}
