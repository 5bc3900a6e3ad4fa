/* environ.h - the request as CGI/WSGI variables (RFC 3875 4.1, PEP 3333): one
 * set of rules for every gateway. CGI (h_cgi.c) builds its environment with
 * it, C apps (h_app.c: fh_env, fh_env_at) too, and WSGI (src/wsgi/wsgi.c)
 * takes its HTTP_*, CONTENT_TYPE and CONTENT_LENGTH from fh_env_at, so the
 * three cannot disagree. Pure: no I/O, no allocation, no globals; the callers
 * own every buffer. tests/fuzz/fuzz_environ.c feeds it any request the
 * parser accepts.
 *
 * Which header fields become HTTP_<NAME> variables (env_field_ok):
 *   - names made only of letters, digits and '-', at most ENV_FIELD_MAX
 *     bytes. Any other character ('_' above all) drops the field: X_Foo and
 *     X-Foo would both be HTTP_X_FOO, so a client could slip a value past a
 *     proxy that filtered one spelling (Apache, nginx and gunicorn drop them);
 *   - never Proxy: HTTP_PROXY is taken for a proxy setting by many HTTP
 *     libraries (httpoxy, CVE-2016-5385);
 *   - not Content-Type and Content-Length: CONTENT_TYPE and CONTENT_LENGTH;
 *   - not the fields the core consumed, which would no longer be true:
 *     Transfer-Encoding (the body was de-chunked), and the connection's own
 *     Connection, Keep-Alive, Proxy-Connection, TE, Trailer and Upgrade (the
 *     connection is the core's: a handler can neither keep it, upgrade it nor
 *     send trailers).
 * The variable is "HTTP_" + the name upper-cased, '-' -> '_'. Several fields
 * of one name are one variable, listed where the first one was: the values
 * in the order received, joined with ", " (RFC 9110 5.3), Cookie with "; "
 * (RFC 9113 8.2.3: what cookie parsers expect). */
#ifndef FH_ENVIRON_H
#define FH_ENVIRON_H

#include <stddef.h>

#include "http_parse.h"

#define ENV_FIELD_MAX 256                /* longer field names are dropped */
#define ENV_VAR_MAX (5 + ENV_FIELD_MAX)  /* "HTTP_" + name, without the NUL */

/* 1 if the field called name becomes an HTTP_* variable. */
int env_field_ok(struct http_str name);

/* Iterate over the variables: *pos starts at 0. Returns the index in
 * h->headers of the next exported field name's first occurrence, or -1 at
 * the end. Every exported name comes exactly once. */
int env_next_field(const struct http_req *h, size_t *pos);

/* "HTTP_" + the name of field i, NUL-terminated into out[cap]. Returns its
 * length, or 0 if it does not fit (cap > ENV_VAR_MAX always does). */
size_t env_var_name(const struct http_req *h, int i, char *out, size_t cap);

/* The value of field i's variable: every field of that name, joined. Copies
 * what fits into out[0..cap) (no NUL) and returns the whole length, so a
 * call with cap 0 sizes the buffer. */
size_t env_var_value(const struct http_req *h, int i, char *out, size_t cap);

/* The field behind the variable var ("HTTP_X_FOO"): the index of its first
 * occurrence, or -1 (no such field, or one that is not exported). */
int env_find_var(const struct http_req *h, const char *var);

/* ---- meta-variables that come from the request head ---- */

/* SERVER_NAME: the host the client asked for (Host, or the authority of an
 * absolute-form target) without its port, "[v6]" kept whole; len 0 when it
 * named none (the caller then uses the local address). */
struct http_str env_server_name(const struct http_req *h);

/* CONTENT_TYPE: the first Content-Type field; .p NULL when none. */
struct http_str env_content_type(const struct http_req *h);

/* CONTENT_LENGTH is set when the request framed a body, with Content-Length
 * (even 0) or chunked (even empty); its value is the de-chunked length. */
int env_has_body(const struct http_req *h);

/* SERVER_PROTOCOL */
const char *env_protocol(const struct http_req *h);

/* ---- HTTPS ---- */

/* What a gateway may know of an HTTPS connection (tls.c fills it after the
 * handshake; struct request points to it): plain strings, valid while the
 * request is served. */
struct tls_facts {
    const char *protocol; /* "TLSv1.3" */
    const char *cipher;   /* "TLS_AES_256_GCM_SHA384" (OpenSSL's names) */
    const char *sni;      /* the server name the client asked for, or NULL */
};

/* The variables of an HTTPS request, with mod_ssl's names, for every
 * gateway: HTTPS=on, SSL_PROTOCOL, SSL_CIPHER, SSL_TLS_SNI (when the client
 * sent SNI). Variable i (0 <= i < ENV_TLS_VARS): its value, or NULL when it
 * is not set (no TLS, no SNI); *name gets its name either way. */
#define ENV_TLS_VARS 4
const char *env_tls_var(const struct tls_facts *t, int i, const char **name);

#endif
