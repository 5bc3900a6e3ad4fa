/* tls.c - forkload's https:// client context (OpenSSL). The parent makes
 * one SSL_CTX before it forks; every client process inherits it and makes
 * one SSL object per connection from it (client.c). What is set here once:
 * TLS 1.2 at least, ALPN http/1.1, whom to trust (the system's CAs,
 * --cacert FILE, or nobody checked with --insecure), the name or address
 * the certificate must be for. --tls-resume needs nothing here: client.c
 * keeps each slot's newest session itself (SSL_get1_session at the close),
 * not in OpenSSL's client cache, which uses a TLS 1.3 ticket only once. */
#include "forkload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

static void tls_fail(const char *what) __attribute__((noreturn));

static void tls_fail(const char *what)
{
    char buf[256] = "unknown error";
    unsigned long e = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    fprintf(stderr, "forkload: %s: %s\n", what, buf);
    exit(2);
}

void tls_setup(struct config *cfg, const char *host, int host_is_ip)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        tls_fail("TLS");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* A server that closes without close_notify ends the stream (as a plain
     * EOF would); a body delimited by the close is still checked for its
     * framing by the HTTP parser. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* flush() resumes a write with more bytes than it first offered (the
     * requests issued meanwhile): partial writes, any buffer. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* read what the socket has, not a record header at a time: client.c
     * reads until OpenSSL wants more from the socket anyway */
    SSL_CTX_set_read_ahead(ctx, 1);
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1);
    if (cfg->insecure) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (cfg->cacert) {
            if (SSL_CTX_load_verify_locations(ctx, cfg->cacert, NULL) != 1) {
                char what[300];
                snprintf(what, sizeof(what), "--cacert: cannot load '%.200s'", cfg->cacert);
                SSL_CTX_free(ctx);
                tls_fail(what);
            }
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            SSL_CTX_free(ctx);
            tls_fail("TLS: the system's CA certificates");
        }
        X509_VERIFY_PARAM *vp = SSL_CTX_get0_param(ctx);
        int ok = host_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, host)
                            : X509_VERIFY_PARAM_set1_host(vp, host, 0);
        if (ok != 1) {
            SSL_CTX_free(ctx);
            tls_fail("TLS: the host to check the certificate against");
        }
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (!cfg->tls_resume) /* TLS 1.2: no ticket asked for (1.3 servers send them anyway) */
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    /* SNI: names only (RFC 6066 has no addresses) */
    if (!host_is_ip) {
        cfg->sni = strdup(host);
        if (!cfg->sni) {
            SSL_CTX_free(ctx);
            fputs("forkload: out of memory\n", stderr);
            exit(1);
        }
    }
    cfg->ssl_ctx = ctx;
}

const char *tls_error_reason(SSL *ssl, char *buf, size_t len)
{
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    unsigned long e = ERR_peek_last_error();
    if (vr != X509_V_OK) {
        snprintf(buf, len, "certificate verify failed: %s (--cacert FILE trusts a CA, "
                 "--insecure skips the check)", X509_verify_cert_error_string(vr));
    } else if (e) {
        ERR_error_string_n(e, buf, len);
    } else {
        snprintf(buf, len, "connection closed during the handshake");
    }
    return buf;
}
