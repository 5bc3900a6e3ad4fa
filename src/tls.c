/* tls.c - HTTPS with OpenSSL 3, as a transport (transport.h): conn.c's one
 * state machine drives non-blocking handshakes, reads and writes through it in
 * every model. See tls.h for the life cycle and docs/tls.md for the flags.
 *
 * Built as the module build/tls.so (linked with libssl/libcrypto; the server
 * binary is not): tls_load.c loads it when --tls-cert is given and calls it
 * through fh_tls_module()'s table; it reaches the core only through the
 * struct fh_tls_core given to setup() (tls_module.h).
 *
 * A connection accepted on a TLS listener starts by peeking at its first
 * byte: 0x16 (a TLS handshake record) goes on as TLS; a letter is someone
 * speaking plain HTTP to an HTTPS port, which is answered with a 400 page
 * saying so (the connection switches to the plain transport and the policy
 * TP_POLICY_SPEAKS_HTTPS tells conn.c); anything else is handed to OpenSSL,
 * which fails the handshake with a reason for the log.
 *
 * Session resumption across processes: the ticket keys are derived from a
 * secret made before any fork (and made anew on SIGHUP) and the current time
 * slot (TICKET_SLOT_S), so every worker of a generation - and every child of
 * the fork model - encrypts with the same key and accepts the previous slot's,
 * with no shared memory. Each process also keeps a session-ID cache. */
#include "tls_module.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "conn.h"
#include "handler.h"
#include "net.h"
#include "scoreboard.h"
#include "transport.h"

#define TICKET_SLOT_S 3600 /* a ticket key encrypts for an hour, decrypts for two */
#define IO_CHUNK 131072    /* a write: eight full 16 KiB records */
/* the records of one call, sent in one write (batch_flush) */
#define BATCH_CAP (IO_CHUNK + 8 * 1024)
/* an AEAD record adds at most 30 bytes (header 5, explicit nonce 8, tag 16,
 * TLS 1.3 inner type 1): IO_CHUNK's records fit in one batch */
_Static_assert(BATCH_CAP >= IO_CHUNK + (IO_CHUNK / SSL3_RT_MAX_PLAIN_LENGTH + 1) * 30,
               "a chunk's records fit in one batch");

/* Mozilla's "intermediate" configuration (v5.7) for TLS 1.2: ECDHE or DHE key
 * exchange only (forward secrecy: a stolen key does not decrypt recorded
 * traffic) and AEAD ciphers only (no CBC padding oracles, no RC4, no 3DES,
 * no NULL/EXPORT/anonymous suites). TLS 1.3 suites all qualify. */
#define DEFAULT_CIPHERS                                                                        \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                               \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                               \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                               \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"

/* ---- the core (tls_module.h: lent to setup(), before any other call) ---- */

static const struct fh_tls_core *core;

/* ---- options (cfg: config.c) ---- */

#define MAX_CERTS FH_MAX_CERTS
static int min_proto = TLS1_2_VERSION, max_proto = TLS1_3_VERSION;

static int proto_of(const char *name, size_t n)
{
    static const struct { const char *name; int v; } p[] = {
        {"TLSv1.2", TLS1_2_VERSION}, {"TLSv1.3", TLS1_3_VERSION},
        {"1.2", TLS1_2_VERSION}, {"1.3", TLS1_3_VERSION},
    };
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
        if (strlen(p[i].name) == n && strncmp(p[i].name, name, n) == 0)
            return p[i].v;
    return -1;
}

/* --tls-protocols: a list of TLSv1.2 / TLSv1.3. 0, or -1 after one line. */
static int parse_protocols(const char *list)
{
    int lo = 0, hi = 0;
    const char *s = list;
    while (*s) {
        size_t n = strcspn(s, ", ");
        int v = proto_of(s, n);
        if (v < 0) {
            fprintf(stderr, "forkhttpd: --tls-protocols: expected TLSv1.2 and/or TLSv1.3 (older "
                            "versions are broken and refused), not '%s'\n", list);
            return -1;
        }
        if (!lo || v < lo)
            lo = v;
        if (v > hi)
            hi = v;
        s += n;
        s += strspn(s, ", ");
    }
    if (!lo) {
        fprintf(stderr, "forkhttpd: --tls-protocols: an empty list\n");
        return -1;
    }
    min_proto = lo;
    max_proto = hi;
    return 0;
}

/* ---- contexts ---- */

/* One context per certificate; [0] is the default, the others are chosen by
 * SNI. A generation is replaced as a whole on reload. */
struct ctxset {
    SSL_CTX *ctx[MAX_CERTS];
    X509 *leaf[MAX_CERTS]; /* borrowed from ctx */
    int n;
};
static struct ctxset cur;

static unsigned char ticket_secret[32];

/* The keys of the two slots in use, derived once per slot: deriving them is
 * three HMACs, and OpenSSL 3 looks each algorithm up by name (locks and
 * string compares) - per ticket, twice per handshake, it was a tenth of a
 * full handshake's CPU. Cleared with the secret (keys_forget). */
struct slot_key {
    uint64_t slot;
    int ok;
    unsigned char name[16], aes[32], mac[32];
};
static struct slot_key slot_cache[2]; /* [slot % 2] */
static EVP_CIPHER *ticket_cipher;     /* AES-256-CBC, fetched once */

/* The first OpenSSL error's reason, for a one-line message. */
static const char *ssl_reason(char *buf, size_t cap)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    if (r)
        snprintf(buf, cap, "%s", r);
    else if (e)
        ERR_error_string_n(e, buf, cap);
    else
        snprintf(buf, cap, "%s", errno ? strerror(errno) : "unknown error");
    ERR_clear_error();
    return buf;
}

/* SNI: the certificate whose subjectAltName (or CN) matches the name the
 * client asked for; no match, or no name: the default (the first). */
static int on_servername(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    struct ctxset *set = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name || !*name)
        return SSL_TLSEXT_ERR_OK;
    for (int i = 0; i < set->n; i++) {
        if (set->leaf[i] && X509_check_host(set->leaf[i], name, 0, 0, NULL) == 1) {
            if (i > 0)
                SSL_set_SSL_CTX(ssl, set->ctx[i]);
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

/* ALPN: HTTP/1.1 is all we speak; a client offering only h2 gets no ALPN. */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    static const unsigned char h11[] = "\x08http/1.1";
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, h11, sizeof h11 - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* The ticket keys of a time slot: HMAC-SHA256(secret, label || slot). */
static void slot_keys(uint64_t slot, unsigned char name[16], unsigned char aes[32],
                      unsigned char mac[32])
{
    unsigned char msg[9], out[32];
    unsigned int len;
    for (int part = 0; part < 3; part++) {
        msg[0] = (unsigned char)part;
        for (int i = 0; i < 8; i++)
            msg[1 + i] = (unsigned char)(slot >> (8 * i));
        HMAC(EVP_sha256(), ticket_secret, sizeof ticket_secret, msg, sizeof msg, out, &len);
        if (part == 0)
            memcpy(name, out, 16);
        else
            memcpy(part == 1 ? aes : mac, out, 32);
    }
}

static const struct slot_key *keys_of(uint64_t slot)
{
    struct slot_key *k = &slot_cache[slot % 2];
    if (!k->ok || k->slot != slot) {
        slot_keys(slot, k->name, k->aes, k->mac);
        k->slot = slot;
        k->ok = 1;
    }
    return k;
}

static void keys_forget(void)
{
    OPENSSL_cleanse(slot_cache, sizeof slot_cache);
}

static int on_ticket(SSL *ssl, unsigned char key_name[16], unsigned char *iv,
                     EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    (void)ssl;
    uint64_t slot = (uint64_t)time(NULL) / TICKET_SLOT_S;
    const struct slot_key *k = keys_of(slot);
    int rc = 1;
    if (enc) {
        if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) <= 0)
            return -1;
        memcpy(key_name, k->name, 16);
        if (!EVP_EncryptInit_ex(cctx, ticket_cipher, NULL, k->aes, iv))
            return -1;
    } else {
        if (memcmp(key_name, k->name, 16) != 0) {
            k = keys_of(slot - 1);
            if (memcmp(key_name, k->name, 16) != 0)
                return 0; /* unknown or expired: a full handshake */
            rc = 2;       /* valid, but issue a ticket under the current key */
        }
        if (!EVP_DecryptInit_ex(cctx, ticket_cipher, NULL, k->aes, iv))
            return -1;
    }
    unsigned char mac[32];
    memcpy(mac, k->mac, sizeof mac);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, mac, sizeof mac),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)(uintptr_t) "SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    if (!EVP_MAC_CTX_set_params(hctx, params))
        return -1;
    return rc;
}

static SSL_CTX *make_ctx(int i, char *err, size_t errcap)
{
    char why[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, errcap, "cannot make a TLS context: %s", ssl_reason(why, sizeof why));
        return NULL;
    }
    /* a full chain (leaf, then intermediates) in one PEM file */
    if (SSL_CTX_use_certificate_chain_file(ctx, core->cfg->tls_cert[i]) != 1) {
        snprintf(err, errcap, "--tls-cert %s: %s", core->cfg->tls_cert[i], ssl_reason(why, sizeof why));
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, core->cfg->tls_key[i], SSL_FILETYPE_PEM) != 1) {
        snprintf(err, errcap, "--tls-key %s: %s", core->cfg->tls_key[i], ssl_reason(why, sizeof why));
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        snprintf(err, errcap, "--tls-key %s: does not match the certificate in %s", core->cfg->tls_key[i],
                 core->cfg->tls_cert[i]);
        goto fail;
    }
    SSL_CTX_set_min_proto_version(ctx, min_proto);
    SSL_CTX_set_max_proto_version(ctx, max_proto);
    const char *ciphers = core->cfg->tls_ciphers ? core->cfg->tls_ciphers : DEFAULT_CIPHERS;
    if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
        snprintf(err, errcap, "--tls-ciphers '%s': %s", ciphers, ssl_reason(why, sizeof why));
        goto fail;
    }
    SSL_CTX_set_dh_auto(ctx, 1);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_ENABLE_KTLS);
    /* an idle connection holds no buffers; writes may resume from a moved
     * buffer and report each record written (conn.c retries from its offset) */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    static const unsigned char sid_ctx[] = "forkhttpd";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, 20000);
    SSL_CTX_set_timeout(ctx, 2 * TICKET_SLOT_S);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket);
    /* one TLS 1.3 ticket per full handshake, not OpenSSL's two: a client
     * resumes one connection with it and gets a fresh one each time (Go's
     * crypto/tls, behind Caddy, sends one too); the second cost 5% of a
     * handshake's CPU (the session copied, encoded and encrypted again) */
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

static void set_free(struct ctxset *s)
{
    for (int i = 0; i < s->n; i++)
        SSL_CTX_free(s->ctx[i]);
    s->n = 0;
}

/* Build every context from the files: 0, or -1 with the message in err. */
static int set_load(struct ctxset *s, char *err, size_t errcap)
{
    memset(s, 0, sizeof *s);
    for (int i = 0; i < core->cfg->ntls_cert; i++) {
        SSL_CTX *ctx = make_ctx(i, err, errcap);
        if (!ctx) {
            set_free(s);
            return -1;
        }
        s->ctx[s->n] = ctx;
        s->leaf[s->n] = SSL_CTX_get0_certificate(ctx);
        s->n++;
    }
    return 0;
}

static void set_install(struct ctxset *s)
{
    /* SNI is asked of the context a connection starts with: the default one;
     * its argument is the set in its final place (cur) */
    for (int i = 0; i < s->n; i++) {
        SSL_CTX_set_tlsext_servername_callback(s->ctx[i], on_servername);
        SSL_CTX_set_tlsext_servername_arg(s->ctx[i], &cur);
    }
}

static void tls_free(void);

/* the socket under OpenSSL (below, with the transport) */
static BIO_METHOD *sock_meth;
static int kernel_tls; /* the kernel offers the tls ULP: OpenSSL's own socket BIO */
static int make_sock_meth(void);
static int kernel_offers_tls(void);

static int tls_setup(const struct fh_tls_core *with)
{
    core = with;
    if (!core->cfg->ntls_cert)
        return 0;
    if (core->cfg->tls_protocols && parse_protocols(core->cfg->tls_protocols) < 0)
        return -1;
    char err[1024];
    if (set_load(&cur, err, sizeof err) < 0) {
        fprintf(stderr, "forkhttpd: %s\n", err);
        return -1;
    }
    set_install(&cur);
    kernel_tls = kernel_offers_tls();
    if (!kernel_tls && make_sock_meth() < 0) {
        fprintf(stderr, "forkhttpd: TLS: cannot make the socket BIO\n");
        tls_free();
        return -1;
    }
    ticket_cipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
    if (!ticket_cipher) {
        fprintf(stderr, "forkhttpd: TLS: no AES-256-CBC for the session tickets\n");
        tls_free();
        return -1;
    }
    keys_forget();
    if (RAND_bytes(ticket_secret, sizeof ticket_secret) != 1) {
        fprintf(stderr, "forkhttpd: TLS: no random bytes for the session-ticket keys\n");
        tls_free();
        return -1;
    }
    return 0;
}

static void tls_reload(void)
{
    if (!core->cfg->ntls_cert)
        return;
    char err[1024];
    struct ctxset next;
    if (set_load(&next, err, sizeof err) < 0) {
        core->log_error("reload: %s; still serving the previous certificates", err);
        return;
    }
    set_free(&cur);
    cur = next;
    set_install(&cur);
    /* new ticket keys too: tickets of the old generation make a full handshake */
    keys_forget();
    if (RAND_bytes(ticket_secret, sizeof ticket_secret) != 1)
        core->log_error("reload: no random bytes for new session-ticket keys; keeping the old ones");
    core->log_info("reload: %d TLS certificate%s loaded", cur.n, cur.n == 1 ? "" : "s");
}

static void tls_free(void)
{
    set_free(&cur);
    BIO_meth_free(sock_meth);
    sock_meth = NULL;
    OPENSSL_cleanse(ticket_secret, sizeof ticket_secret);
    keys_forget();
    EVP_CIPHER_free(ticket_cipher);
    ticket_cipher = NULL;
}

/* ---- the transport ---- */

enum { HS_PEEK, HS_RUN, HS_DONE };

struct tls_conn {
    SSL *ssl;
    int fd;
    int hs;          /* HS_* */
    int fatal;       /* an SSL error happened: no close_notify, no more calls */
    int shut;        /* close_notify sent: the rest of the input is drained raw */
    int ktls;        /* the kernel encrypts: SSL_sendfile */
    int drained;     /* the last recv() was short: the socket had no more */
    /* records encrypted but not yet taken by the socket (it was full):
     * owned here, malloc'd only then, sent before anything else */
    unsigned char *pend;
    size_t pend_off, pend_len;
    /* pend is only the session ticket of a TLS 1.3 handshake just done: no
     * client waits for it, so it may ride with the first response (one
     * packet less per connection) instead of leaving on its own */
    int pend_lazy;
    int first_read;  /* TLS 1.3 handshake just done: the next read writes the ticket */
    struct tls_facts facts;
};

/* ---- the socket under OpenSSL: records batched into one write ----
 *
 * OpenSSL's socket BIO sends each record with its own write(2): 64 syscalls
 * per MiB of body, and a handshake's flight in 4-6 writes. Our BIO collects
 * the records one call makes (a 64 KiB chunk of a file, a response, a
 * handshake flight) in a per-process buffer and sends them in one write at
 * the end of the call (batch_flush), as h2o does. Whatever the socket does
 * not take is kept per connection (pend) and sent first at the next call;
 * conn.c asks (transport flush) before it counts a response as sent.
 * The batch is empty between calls, so one buffer serves every connection
 * of the process (each model's process runs one connection's call at a
 * time; app threads never touch sockets). Reads: recv() into OpenSSL's
 * read-ahead buffer; a short read tells tls_recv the socket is drained
 * without another recv() that would return EAGAIN.
 * With kernel TLS available (tcp_available_ulp lists "tls"), connections
 * keep OpenSSL's socket BIO so SSL_sendfile can be used. */

static unsigned char batch[BATCH_CAP];
static size_t batch_len;

static void pend_drop(struct tls_conn *t)
{
    free(t->pend);
    t->pend = NULL;
    t->pend_off = t->pend_len = t->pend_lazy = 0;
}

/* batch[from..] kept in pend (which is empty), and the batch emptied.
 * 0, or -1 (ENOMEM). */
static int pend_keep(struct tls_conn *t, size_t from, int lazy)
{
    size_t n = batch_len - from;
    batch_len = 0;
    if (t->pend || !(t->pend = malloc(n))) {
        errno = ENOMEM;
        return -1;
    }
    memcpy(t->pend, batch + from, n);
    t->pend_off = 0;
    t->pend_len = n;
    t->pend_lazy = lazy;
    return 0;
}

/* Send pend: 0 when it is all gone, -1 with errno (EAGAIN: some is left). */
static int pend_flush(struct tls_conn *t)
{
    while (t->pend_off < t->pend_len) {
        ssize_t w = send(t->fd, t->pend + t->pend_off, t->pend_len - t->pend_off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        t->pend_off += (size_t)w;
    }
    pend_drop(t);
    return 0;
}

/* The batch as it is, kept in pend without trying the socket (the ticket). */
static int batch_keep(struct tls_conn *t)
{
    return batch_len ? pend_keep(t, 0, 1) : 0;
}

/* Before a write: what waits in pend goes first - into the batch, when it
 * is a lazy ticket that fits (then it leaves with this call's records),
 * else to the socket. 0, or -1 with errno (EAGAIN: not all of it left). */
static int pend_first(struct tls_conn *t)
{
    if (!t->pend)
        return 0;
    size_t n = t->pend_len - t->pend_off;
    if (t->pend_lazy && batch_len == 0 && n <= sizeof batch / 2) {
        memcpy(batch, t->pend + t->pend_off, n);
        batch_len = n;
        pend_drop(t);
        return 0;
    }
    return pend_flush(t);
}

/* Send the batch; what the socket does not take moves to pend. 0 (all sent,
 * or the rest kept), or -1 with errno for a dead socket. The batch is empty
 * after either. */
static int batch_flush(struct tls_conn *t)
{
    size_t off = 0;
    while (off < batch_len) {
        ssize_t w = send(t->fd, batch + off, batch_len - off, MSG_NOSIGNAL);
        if (w >= 0) {
            off += (size_t)w;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return pend_keep(t, off, 0);
        batch_len = 0;
        return -1;
    }
    batch_len = 0;
    return 0;
}

static int sock_write(BIO *b, const char *data, int len)
{
    struct tls_conn *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (t->pend && t->pend_lazy && batch_len == 0)
        pend_first(t); /* the ticket held goes in front of this record */
    if (t->pend) { /* order: what waits goes first */
        BIO_set_retry_write(b);
        errno = EAGAIN;
        return -1;
    }
    if ((size_t)len > sizeof batch - batch_len) {
        if (batch_flush(t) < 0)
            return -1;
        if (t->pend) {
            BIO_set_retry_write(b);
            errno = EAGAIN;
            return -1;
        }
    }
    if ((size_t)len > sizeof batch) { /* not a record OpenSSL makes; still correct */
        ssize_t w;
        while ((w = send(t->fd, data, (size_t)len, MSG_NOSIGNAL)) < 0 && errno == EINTR)
            ;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            BIO_set_retry_write(b);
        return (int)w;
    }
    memcpy(batch + batch_len, data, (size_t)len);
    batch_len += (size_t)len;
    return len;
}

static int sock_read(BIO *b, char *buf, int len)
{
    struct tls_conn *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (t->drained) { /* a short read earlier in this call: nothing more yet */
        BIO_set_retry_read(b);
        errno = EAGAIN;
        return -1;
    }
    ssize_t n;
    while ((n = recv(t->fd, buf, (size_t)len, 0)) < 0 && errno == EINTR)
        ;
    if (n >= 0) {
        t->drained = n < len;
        return (int)n;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        t->drained = 1;
        BIO_set_retry_read(b);
    }
    return -1;
}

static long sock_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b, (void)num, (void)ptr;
    return cmd == BIO_CTRL_FLUSH; /* the flush is ours, at the end of each call */
}

static int sock_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static int make_sock_meth(void)
{
    sock_meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "forkhttpd socket");
    if (!sock_meth || !BIO_meth_set_write(sock_meth, sock_write) || !BIO_meth_set_read(sock_meth, sock_read) ||
        !BIO_meth_set_ctrl(sock_meth, sock_ctrl) || !BIO_meth_set_create(sock_meth, sock_create))
        return -1;
    return 0;
}

static int kernel_offers_tls(void)
{
    char ulp[256] = "";
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "r");
    if (!f)
        return 0;
    if (!fgets(ulp, sizeof ulp, f))
        ulp[0] = 0;
    fclose(f);
    for (char *p = strtok(ulp, " \n"); p; p = strtok(NULL, " \n"))
        if (strcmp(p, "tls") == 0)
            return 1;
    return 0;
}

/* After an SSL call that may have written: send the batch. 0, or -1 with
 * errno for a dead socket (the connection is then fatal). */
static int after_call(struct tls_conn *t)
{
    if (!batch_len)
        return 0;
    if (batch_flush(t) < 0) {
        t->fatal = 1;
        return -1;
    }
    return 0;
}

static void count(volatile uint64_t *field)
{
    __atomic_add_fetch(field, 1, __ATOMIC_RELAXED);
}

static void peer_str(struct conn *c, char *ip, size_t cap, int *port)
{
    core->addr_str(&c->peer, ip, cap, port);
}

/* The handshake: 0 done, -1 with errno (EAGAIN + c->tp_want: wait). */
static int handshake(struct conn *c, struct tls_conn *t)
{
    if (t->hs == HS_PEEK) {
        unsigned char b;
        ssize_t n = recv(c->fd, &b, 1, MSG_PEEK);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                c->tp_want = CONN_READ;
            return -1;
        }
        if (n == 0) {
            errno = 0;
            return 1; /* EOF before a byte */
        }
        if (b >= 'A' && b <= 'Z') {
            /* plain HTTP on an HTTPS port: answer it in plain text (conn.c) */
            SSL_free(t->ssl);
            t->ssl = NULL;
            c->tp = core->plain;
            c->tp_ctx = NULL;
            free(t);
            c->policy = TP_POLICY_SPEAKS_HTTPS;
            return 2;
        }
        t->hs = HS_RUN;
    }
    if (t->pend && pend_flush(t) < 0) { /* our flight goes out before more of it is made */
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        c->tp_want = CONN_WRITE;
        return -1;
    }
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    int saved = errno;
    /* done, TLS 1.3: what it wrote last is the ticket, which can wait for
     * the response (TLS 1.2's last flight has the server's Finished, which
     * the client waits for) */
    int lazy = r == 1 && SSL_version(t->ssl) == TLS1_3_VERSION && !t->pend;
    if (lazy ? batch_keep(t) < 0 : after_call(t) < 0) {
        t->fatal = 1;
        return -1;
    }
    t->first_read = lazy; /* (OpenSSL 3.0 writes the ticket there) */
    errno = saved;
    if (r == 1) {
        t->hs = HS_DONE;
        t->facts.protocol = SSL_get_version(t->ssl);
        t->facts.cipher = SSL_get_cipher_name(t->ssl);
        t->facts.sni = SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
        t->ktls = BIO_get_ktls_send(SSL_get_wbio(t->ssl)) > 0;
        int resumed = SSL_session_reused(t->ssl);
        struct sb_slot *self = *core->sb_self;
        if (self) {
            count(&self->tls_handshakes);
            if (resumed)
                count(&self->tls_resumed);
        }
        if (*core->log_verbose_on)
            core->vlog("TLS handshake done: %s %s%s%s%s%s", t->facts.protocol, t->facts.cipher,
                 t->facts.sni ? ", SNI " : "", t->facts.sni ? t->facts.sni : "",
                 resumed ? ", resumed" : "", t->ktls ? ", kernel TLS" : "");
        return 0;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        /* a flight the socket did not take all of: wait to send the rest */
        c->tp_want = e == SSL_ERROR_WANT_READ && !t->pend ? CONN_READ : CONN_WRITE;
        errno = EAGAIN;
        return -1;
    }
    t->fatal = 1;
    char ip[INET6_ADDRSTRLEN], why[256];
    int port = 0;
    peer_str(c, ip, sizeof ip, &port);
    if (e == SSL_ERROR_SSL) {
        if (*core->sb_self)
            count(&(*core->sb_self)->tls_failed);
        core->warn("TLS handshake with %s port %d failed: %s", ip, port, ssl_reason(why, sizeof why));
    } else { /* the client went away mid-handshake */
        ERR_clear_error();
        if (*core->log_verbose_on)
            core->vlog("TLS handshake with %s port %d: the client closed the connection (%s)", ip, port,
                 saved ? strerror(saved) : "EOF");
    }
    errno = EPROTO;
    return -1;
}

/* An SSL call's failure as a syscall's: -1 with errno (EAGAIN + tp_want to
 * wait), or 0 for the end of the stream. */
static ssize_t io_error(struct conn *c, struct tls_conn *t, int r)
{
    int e = SSL_get_error(t->ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        c->tp_want = CONN_READ;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        c->tp_want = CONN_WRITE;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN: /* close_notify */
        return 0;
    case SSL_ERROR_SYSCALL: {
        int saved = errno;
        ERR_clear_error();
        t->fatal = 1;
        if (!saved)
            return 0; /* EOF */
        errno = saved;
        return -1;
    }
    default: {
        char why[256];
        ssl_reason(why, sizeof why);
        if (*core->log_verbose_on)
            core->vlog("TLS error: %s", why);
        t->fatal = 1;
        errno = EPROTO;
        return -1;
    }
    }
}

/* recv: read records until n bytes or the socket is drained. A short count
 * therefore means "drained" as for recv(2) (conn.c's readable flag). */
static ssize_t tls_recv(struct conn *c, void *buf, size_t n)
{
    struct tls_conn *t = c->tp_ctx;
    c->tp_want = 0;
    /* one recv() may find the socket drained; after it, the model's wait
     * (an edge, or poll) says when more comes, not another recv() */
    t->drained = 0;
    if (t->shut || t->fatal) /* lingering after close_notify: drain the raw bytes */
        return recv(c->fd, buf, n, 0);
    if (t->hs != HS_DONE) {
        int r = handshake(c, t);
        if (r == 1)
            return 0;
        if (r == 2) /* now plain */
            return c->tp->recv(c, buf, n);
        if (r < 0)
            return -1;
    }
    if (t->pend && !t->pend_lazy && pend_flush(t) < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        t->fatal = 1;
        return -1;
    }
    size_t got = 0;
    while (got < n) {
        size_t k = 0;
        ERR_clear_error();
        int r = SSL_read_ex(t->ssl, (char *)buf + got, n - got, &k);
        int saved = errno;
        /* a read may write: the ticket (first read), an alert, a key update */
        int keep = t->first_read && !t->pend &&
                   (r == 1 || SSL_get_error(t->ssl, r) == SSL_ERROR_WANT_READ);
        t->first_read = 0;
        if (keep ? batch_keep(t) < 0 : after_call(t) < 0) {
            t->fatal = 1;
            return got > 0 ? (ssize_t)got : -1;
        }
        if (r == 1) {
            got += k;
            /* nothing buffered and the last recv() was short: the socket is
             * drained, which a short count says (no recv() for EAGAIN) */
            if (t->drained && !SSL_has_pending(t->ssl))
                break;
            continue;
        }
        errno = saved;
        ssize_t v = io_error(c, t, r);
        if (v < 0 && errno == EAGAIN && t->pend && !t->pend_lazy)
            c->tp_want = CONN_WRITE; /* what we owe the peer goes first */
        if (got > 0) {
            if (v == 0)
                c->rdhup = 1; /* the end is known: the next read must not wait for an edge */
            if (v < 0 && errno != EAGAIN)
                t->fatal = 1;
            errno = saved;
            return (ssize_t)got;
        }
        return v;
    }
    return (ssize_t)got;
}

/* Write len bytes from buf, record after record, until done or the socket is
 * full. Returns the bytes written, or -1 (EAGAIN + tp_want) with none. */
static ssize_t write_buf(struct conn *c, struct tls_conn *t, const void *buf, size_t len, int last)
{
    size_t tot = 0;
    c->tp_want = 0;
    if (t->fatal || t->hs != HS_DONE) {
        errno = EPIPE;
        return -1;
    }
    if (pend_first(t) < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            c->tp_want = CONN_WRITE;
        else
            t->fatal = 1;
        return -1;
    }
    while (tot < len) {
        size_t k = 0;
        ERR_clear_error();
        int r = SSL_write_ex(t->ssl, (const char *)buf + tot, len - tot, &k);
        if (r == 1) {
            tot += k;
            continue;
        }
        int saved = errno;
        if (after_call(t) < 0)
            return -1;
        errno = saved;
        ssize_t v = io_error(c, t, r);
        if (tot > 0 && errno == EAGAIN)
            return (ssize_t)tot; /* the pending record is re-offered from conn.c's offset */
        return v == 0 ? (errno = EPIPE, -1) : v;
    }
    if (last) { /* the end of the connection (conn.c): close_notify in the same write */
        ERR_clear_error();
        SSL_shutdown(t->ssl);
        ERR_clear_error();
        t->shut = 1;
    }
    if (after_call(t) < 0) /* the records of this call, in one write */
        return -1;
    return (ssize_t)tot;
}

static unsigned char scratch[IO_CHUNK]; /* per process: filled and written in one call */

static ssize_t tls_writev(struct conn *c, const struct iovec *iov, int iovcnt)
{
    struct tls_conn *t = c->tp_ctx;
    /* one big buffer of what fits, so a head and its body share records */
    if (iovcnt == 1)
        return write_buf(c, t, iov[0].iov_base, iov[0].iov_len, c->tp_last); /* no copy */
    size_t len = 0, all = 0;
    for (int i = 0; i < iovcnt; i++) {
        size_t k = iov[i].iov_len < sizeof scratch - len ? iov[i].iov_len : sizeof scratch - len;
        memcpy(scratch + len, iov[i].iov_base, k);
        len += k;
        all += iov[i].iov_len;
    }
    return write_buf(c, t, scratch, len, c->tp_last && len == all);
}

static ssize_t tls_sendfile(struct conn *c, int in_fd, off_t *off, size_t n)
{
    struct tls_conn *t = c->tp_ctx;
    if (t->ktls && t->hs == HS_DONE && !t->fatal) {
        c->tp_want = 0;
        ERR_clear_error();
        ossl_ssize_t w = SSL_sendfile(t->ssl, in_fd, *off, n, 0);
        if (w >= 0) {
            *off += w;
            return w;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            c->tp_want = CONN_WRITE;
            return -1;
        }
        return io_error(c, t, (int)w);
    }
    /* one copy: the file's pages into scratch, then SSL_write encrypts into
     * full 16 KiB records */
    size_t want = n < sizeof scratch ? n : sizeof scratch;
    ssize_t r = pread(in_fd, scratch, want, *off);
    if (r <= 0)
        return r;
    ssize_t w = write_buf(c, t, scratch, (size_t)r, c->tp_last && (size_t)r == n);
    if (w > 0)
        *off += w;
    return w;
}

static void tls_shutdown_wr(struct conn *c)
{
    struct tls_conn *t = c->tp_ctx;
    if (!t->fatal && !t->shut && t->hs == HS_DONE) {
        pend_first(t); /* a ticket still held leaves with the close_notify */
        ERR_clear_error();
        SSL_shutdown(t->ssl); /* close_notify; not waiting for the peer's */
        ERR_clear_error();
        after_call(t); /* (what the socket does not take now is dropped) */
    }
    t->shut = 1;
    shutdown(c->fd, SHUT_WR);
}

/* No TCP_CORK under TLS: the records of a call already leave in one write
 * (batch_flush), and a corked socket holding them for a full 64 KiB
 * segment cost a fifth of the throughput of 1 MiB files (1.45 against
 * 1.8 GB/s on loopback, same CPU). */
static int tls_cork(struct conn *c, int on)
{
    (void)c, (void)on;
    return -1; /* not corked: conn.c then has no cork to undo */
}

static int tls_broken(struct conn *c)
{
    return core->plain->broken(c);
}

static void tls_close(struct conn *c)
{
    struct tls_conn *t = c->tp_ctx;
    if (!t)
        return;
    if (t->ssl) {
        if (!t->fatal && !t->shut && t->hs == HS_DONE) {
            pend_first(t);
            ERR_clear_error();
            SSL_shutdown(t->ssl); /* a polite close_notify, if the socket takes it */
            after_call(t);
        }
        ERR_clear_error();
        SSL_free(t->ssl);
    }
    batch_len = 0;
    free(t->pend);
    free(t);
    c->tp_ctx = NULL;
}

static int tls_flush(struct conn *c)
{
    struct tls_conn *t = c->tp_ctx;
    if (!t->pend)
        return 0;
    if (t->fatal) {
        errno = EPIPE;
        return -1;
    }
    if (pend_flush(t) < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            c->tp_want = CONN_WRITE;
        return -1;
    }
    return 0;
}

static const struct tls_facts *tls_facts_of(struct conn *c)
{
    struct tls_conn *t = c->tp_ctx;
    return t && t->hs == HS_DONE ? &t->facts : NULL;
}

static const struct transport transport_tls = {
    .name = "tls",
    .recv = tls_recv,
    .writev = tls_writev,
    .sendfile = tls_sendfile,
    .shutdown_wr = tls_shutdown_wr,
    .cork = tls_cork,
    .broken = tls_broken,
    .close = tls_close,
    .facts = tls_facts_of,
    .flush = tls_flush,
};

static int tls_attach(struct conn *c)
{
    if (!cur.n)
        return -1;
    struct tls_conn *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    t->fd = c->fd;
    t->ssl = SSL_new(cur.ctx[0]);
    if (!t->ssl)
        goto fail;
    if (kernel_tls) {
        if (SSL_set_fd(t->ssl, c->fd) != 1)
            goto fail;
    } else {
        BIO *r = BIO_new(sock_meth), *w = r ? BIO_new(sock_meth) : NULL;
        if (!w) {
            BIO_free(r);
            goto fail;
        }
        BIO_set_data(r, t);
        BIO_set_data(w, t);
        SSL_set_bio(t->ssl, r, w); /* the SSL owns both */
        SSL_set_read_ahead(t->ssl, 1);
    }
    SSL_set_accept_state(t->ssl);
    c->tp = &transport_tls;
    c->tp_ctx = t;
    return 0;
fail:
    SSL_free(t->ssl);
    free(t);
    ERR_clear_error();
    return -1;
}

/* The module's one exported symbol (tls_module.h): built with
 * -fvisibility=hidden, nothing else leaves tls.so. */
__attribute__((visibility("default"))) const struct fh_tls_module *fh_tls_module(void)
{
    static const struct fh_tls_module m = {
        .abi = FH_TLS_ABI,
        .conn_size = sizeof(struct conn),
        .config_size = sizeof(struct config),
        .setup = tls_setup,
        .reload = tls_reload,
        .free = tls_free,
        .attach = tls_attach,
    };
    return &m;
}
