/* tls.h - HTTPS: OpenSSL 3 behind the transport seam (transport.h).
 *
 * The rest of the server never sees an OpenSSL type: conn.c reads and writes
 * through c->tp, handlers get plain strings (struct tls_facts, handler.h).
 * The server binary does not even link OpenSSL: these calls are tls_load.c,
 * which loads build/tls.so (src/tls.c) in tls_setup() when --tls-cert is given
 * and forwards to it (tls_module.h); without TLS nothing is loaded, and
 * tls_reload()/tls_free() do nothing.
 *
 * Life cycle:
 *   config.c      --tls-cert/--tls-key/--tls-protocols/--tls-ciphers/
 *                 --redirect-https into cfg (pairs checked there)
 *   main.c        tls_setup() before binding (and before dropping privileges):
 *                 checks --tls-protocols, reads every certificate and key, makes
 *                 the session-ticket secret; one line on stderr naming the
 *                 flag or file, -1, on failure
 *   models        tls_attach(c) for a connection accepted on a TLS listener
 *   SIGHUP        tls_reload() in the process that forks the servers (the
 *                 master, the fork model's parent, the iterative loop): new
 *                 contexts from the files, or one error line and the old ones
 *   exit          tls_free()
 */
#ifndef FH_TLS_H
#define FH_TLS_H

struct conn;

/* Is HTTPS configured (at least one --tls-cert)? */
int tls_enabled(void);
/* --redirect-https given? */
int tls_redirect_on(void);

/* Load certificates and keys, build the contexts. 0, or -1 after one line on stderr. */
int tls_setup(void);
/* SIGHUP: re-read every file; on any failure log one error line naming the
 * file and keep the current contexts. Also rotates the session-ticket secret. */
void tls_reload(void);
/* Free the contexts (idempotent). */
void tls_free(void);

/* Make c speak TLS (server side): 0, or -1 (out of memory: close it). */
int tls_attach(struct conn *c);

#endif
