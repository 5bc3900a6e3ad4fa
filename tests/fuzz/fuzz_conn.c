/* fuzz_conn.c - libFuzzer driver for the connection state machine itself:
 * conn_step() (src/conn.c) with the static handler and its open-file cache
 * (src/h_static.c), over a scripted socket (the transport seam,
 * src/transport.h), several connections in one process.
 *
 * The input is a script. Ops, one byte each (plus their arguments), say:
 * a client queues a request (GET/HEAD with Range, If-None-Match, If-Range,
 * HTTP/1.0, Connection: close, a fuzzed header line; POST, OPTIONS, bodies)
 * or a burst of pipelined ones, or raw bytes; the server steps one
 * connection; another connection in the same worker fetches a file (evicting
 * the cache slot of another: every file has two "colliders" whose names hash
 * to its slot); a file is changed (rewritten in place, replaced by a rename,
 * deleted); a client half-closes or resets; a deadline passes. While the
 * server steps, each recv, writev and sendfile takes its next byte of the
 * script: EAGAIN, a short count, or everything (sendfile really preads the
 * file). When the script ends, every connection is drained and closed.
 *
 * Invariants (abort() when one breaks; ASan/UBSan/LSan run too):
 *  - every byte the server writes parses as responses, in order, one per
 *    request (1xx aside): a status line, header lines, a body framed by
 *    Content-Length (none for HEAD, 204, 304); nothing after "Connection: close";
 *  - a 200 or 206 body is a slice of a version of the file the request named
 *    (Content-Length or Content-Range matching that version's size): for a
 *    file that was never larger than the cache keeps in memory (8 KiB), byte
 *    for byte one version; for larger ones (sendfile reads the live file, so
 *    a file rewritten mid-transfer gives a mix) each stretch of the body comes
 *    from a version no older than the stretch before it; never another
 *    file's bytes or garbage. Any version of this run is accepted, not only
 *    those that existed while the request was in flight: the cache checks a
 *    file at most once per clock tick (a second for a rename), and a same-size
 *    rewrite within one mtime granule is never seen, both documented;
 *  - a plain GET/HEAD of a file that was never deleted is answered 200;
 *  - a response is cut short only when its file changed, the client reset,
 *    or a deadline passed; every complete request the client sent is
 *    answered unless the server said "Connection: close" (or one of those);
 *  - nothing is written after the server shut its side down; a connection
 *    between requests is not left corked;
 *  - with a client that reads everything, every connection ends; after each
 *    input no descriptor and (LSan) no memory is left behind.
 * Each input runs with an empty cache and the files at their first version. */
#include "config.h"
#include "conn.h"
#include "handler.h"
#include "log.h"
#include "transport.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FZC_CACHED 8192 /* h_static.c FC_DATA: files up to this size are held in memory */
#define FZC_SLOTS 128   /* h_static.c FC_SLOTS */
#define FZC_NMAIN 8
#define FZC_NCOLL 2 /* colliders per main file */
#define FZC_NFILES (FZC_NMAIN * (1 + FZC_NCOLL))
#define FZC_MAXV 12       /* versions of one file in one input */
#define FZC_MAXCHANGES 8  /* file changes per input */
#define FZC_MAXCONN 4
#define FZC_MAXQ 48       /* requests in flight on one connection */
#define FZC_TX_CAP 32768
#define FZC_RX_CAP (256 * 1024)
#define FZC_MAXOPS 256

/* ---- the script ---- */

static struct {
    const uint8_t *p;
    size_t n, i;
} fzc_in;

static int fzc_byte(void)
{
    return fzc_in.i < fzc_in.n ? fzc_in.p[fzc_in.i++] : -1;
}

static unsigned fzc_arg(void) /* an argument byte: 0 once the script ends */
{
    int b = fzc_byte();
    return b < 0 ? 0u : (unsigned)b;
}

/* ---- the files and their versions ---- */

struct fzc_ver {
    unsigned char *data; /* NULL: the file was deleted */
    size_t size;
};

struct fzc_file {
    char rel[48];
    int nver;
    int changed, deleted; /* in this input */
    size_t max_size;      /* the largest version of this input */
    struct fzc_ver v[FZC_MAXV];
    char etag[80];        /* the last ETag seen for it ("" none) */
};

static struct fzc_file fzc_files[FZC_NFILES];
static char fzc_root[96];
static int fzc_rootfd = -1;
static unsigned fzc_serial; /* version content seeds of this input */
static int fzc_nchanges;
static int fzc_fdmax;       /* the highest descriptor open after setup */
static int fzc_trace;       /* FUZZ_CONN_TRACE=1: narrate (to read a crash) */

static const struct {
    const char *rel;
    size_t size;
} fzc_main[FZC_NMAIN] = {
    {"a.txt", 13},         {"b.html", 700}, {"c.css", 3000}, {"d/index.html", 300},
    {"e.bin", FZC_CACHED}, {"f.js", 6000},  {"g.txt", 12000}, {"h.txt", 0},
};
static const size_t fzc_coll_size[] = {40, 5000, 8000, 200, 1, 7000};
static const size_t fzc_new_size[] = {0, 1, 13, 300, 2999, 4096, 8191, 8192, 8193, 12000, 20000};

static unsigned char fzc_content(uint32_t seed, size_t p)
{
    uint64_t x = ((uint64_t)seed << 32) ^ (uint64_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return (unsigned char)x;
}

static unsigned char *fzc_make(uint32_t seed, size_t size)
{
    unsigned char *d = malloc(size ? size : 1);
    if (!d)
        abort();
    for (size_t p = 0; p < size; p++)
        d[p] = fzc_content(seed, p);
    return d;
}

static void fzc_write_file(const char *rel, const unsigned char *d, size_t size, int via_rename)
{
    char tmp[64];
    const char *name = rel;
    if (via_rename) {
        snprintf(tmp, sizeof tmp, "%s.new", rel);
        name = tmp;
    }
    int fd = openat(fzc_rootfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || (size && write(fd, d, size) != (ssize_t)size))
        abort();
    close(fd);
    if (via_rename && renameat(fzc_rootfd, name, fzc_rootfd, rel) < 0)
        abort();
}

/* ---- requests the clients can make ---- */

struct fzc_target {
    char path[64];
    int file;   /* whose bytes a 200/206 carries, or -1 */
    int expect; /* the status of a plain GET (0: not checked) */
};

#define FZC_MAXTARGETS (FZC_NFILES + 16)
static struct fzc_target fzc_targets[FZC_MAXTARGETS];
static int fzc_ntargets;

static void fzc_target(const char *path, int file, int expect)
{
    struct fzc_target *t = &fzc_targets[fzc_ntargets++];
    snprintf(t->path, sizeof t->path, "%s", path);
    t->file = file;
    t->expect = expect;
}

/* The cache slot of rel (h_static.c fc_hash): to name files that collide. */
static unsigned fzc_slot(const struct mount *m, const char *rel)
{
    unsigned h = 2166136261u ^ (unsigned)(uintptr_t)m;
    for (; *rel; rel++)
        h = (h ^ (unsigned char)*rel) * 16777619u;
    return h % FZC_SLOTS;
}

static void fzc_cleanup(void)
{
    if (fzc_rootfd < 0)
        return;
    for (int i = 0; i < FZC_NFILES; i++) {
        unlinkat(fzc_rootfd, fzc_files[i].rel, 0);
        free(fzc_files[i].v[0].data);
        fzc_files[i].v[0].data = NULL;
    }
    unlinkat(fzc_rootfd, "d", AT_REMOVEDIR);
    close(fzc_rootfd);
    fzc_rootfd = -1;
    rmdir(fzc_root);
    config_free();
}

/* libFuzzer ends with _exit() (atexit handlers do not run), a crash with
 * abort(): remove the roots of fuzz_conn processes that are gone. */
static void fzc_sweep(void)
{
    DIR *tmp = opendir("/tmp");
    struct dirent *e;
    while (tmp && (e = readdir(tmp))) {
        long pid;
        char rest[32];
        if (sscanf(e->d_name, "fh-fuzz-conn-%ld-%31s", &pid, rest) != 2 || pid <= 0 ||
            kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        int dfd = openat(dirfd(tmp), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
        struct dirent *f;
        while (d && (f = readdir(d))) {
            if (strcmp(f->d_name, "d") == 0) { /* the one subdirectory: its files */
                int sfd = openat(dirfd(d), "d", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                DIR *sd = sfd >= 0 ? fdopendir(sfd) : NULL;
                struct dirent *g;
                while (sd && (g = readdir(sd)))
                    unlinkat(dirfd(sd), g->d_name, 0);
                if (sd)
                    closedir(sd);
                else if (sfd >= 0)
                    close(sfd);
                unlinkat(dirfd(d), "d", AT_REMOVEDIR);
            } else {
                unlinkat(dirfd(d), f->d_name, 0);
            }
        }
        if (d)
            closedir(d);
        else if (dfd >= 0)
            close(dfd);
        unlinkat(dirfd(tmp), e->d_name, AT_REMOVEDIR);
    }
    if (tmp)
        closedir(tmp);
}

static void fzc_setup(void)
{
    static int ready;
    if (ready)
        return;
    ready = 1;
    fzc_sweep();
    snprintf(fzc_root, sizeof fzc_root, "/tmp/fh-fuzz-conn-%ld-XXXXXX", (long)getpid());
    if (!mkdtemp(fzc_root))
        abort();
    fzc_rootfd = open(fzc_root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fzc_rootfd < 0 || mkdirat(fzc_rootfd, "d", 0755) < 0)
        abort();

    static char a0[] = "forkhttpd", a1[] = "--root", a3[] = "--quiet";
    char *argv[] = {a0, a1, fzc_root, a3, NULL};
    config_parse(4, argv);
    log_level = cfg.log_level;
    log_verbose_on = 0;
    const struct mount *root = NULL;
    for (int i = 0; i < cfg.nmounts; i++) { /* main.c opens the mounts' dir_fd */
        struct mount *m = &cfg.mounts[i];
        if (m->dir && (m->dir_fd = open(m->dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
            abort();
        if (m->kind == MOUNT_STATIC)
            root = m;
    }
    if (!root)
        abort();

    /* main files, then FZC_NCOLL files whose names hash to each one's slot */
    int nf = 0;
    for (int i = 0; i < FZC_NMAIN; i++, nf++) {
        snprintf(fzc_files[nf].rel, sizeof fzc_files[nf].rel, "%s", fzc_main[i].rel);
        fzc_files[nf].v[0].size = fzc_main[i].size;
    }
    for (int i = 0; i < FZC_NMAIN; i++) {
        unsigned slot = fzc_slot(root, fzc_main[i].rel);
        int k = 0;
        for (unsigned n = 0; k < FZC_NCOLL; n++) {
            char name[48];
            snprintf(name, sizeof name, "x%u.txt", n);
            if (fzc_slot(root, name) != slot)
                continue;
            snprintf(fzc_files[nf].rel, sizeof fzc_files[nf].rel, "%s", name);
            fzc_files[nf].v[0].size =
                fzc_coll_size[(size_t)nf % (sizeof fzc_coll_size / sizeof fzc_coll_size[0])];
            nf++;
            k++;
        }
    }
    for (int i = 0; i < FZC_NFILES; i++) {
        struct fzc_file *f = &fzc_files[i];
        f->nver = 1;
        f->max_size = f->v[0].size;
        f->v[0].data = fzc_make((uint32_t)i * 4096u, f->v[0].size);
        fzc_write_file(f->rel, f->v[0].data, f->v[0].size, 0);
    }

    for (int i = 0; i < FZC_NFILES; i++) {
        char p[64];
        snprintf(p, sizeof p, "/%.47s", fzc_files[i].rel);
        fzc_target(p, i, 200);
    }
    fzc_target("/d/", 3, 200); /* the directory's index.html */
    fzc_target("/d", -1, 301);
    fzc_target("/", -1, 403); /* no index.html, no --autoindex */
    fzc_target("/nope.txt", -1, 404);
    fzc_target("/.hidden", -1, 404);
    fzc_target("/a.txt?x=1", 0, 200);
    fzc_target("/%61.txt", 0, 200);
    fzc_target("/./b.html", 1, 200);
    fzc_target("/x/../c.css", 2, 200);
    fzc_target("//e.bin", 4, 200);
    fzc_target("/g.txt/", -1, 0);
    fzc_target("/../f.js", 5, 0);

    for (int fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            fzc_fdmax = fd;
    atexit(fzc_cleanup);
    const char *tr = getenv("FUZZ_CONN_TRACE");
    fzc_trace = tr && *tr && *tr != '0';
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fzc_setup();
    return 0;
}

/* ---- the clients and their scripted sockets ---- */

struct fzc_req {
    int file;    /* fzc_files index or -1 */
    int expect;  /* status a plain request must get, 0: any */
    int head;    /* HEAD: no body in the answer */
    int plain;   /* no condition, range, odd header or odd method */
    size_t end;  /* where it ends in the client's byte stream */
};

struct fzc_conn {
    struct conn c;
    int open, scripted, id;
    /* client -> server */
    char tx[FZC_TX_CAP];
    size_t tx_len, tx_off;
    int eof, reset, blind, timed_out;
    /* the requests sent and not answered yet, in order */
    struct fzc_req q[FZC_MAXQ];
    int q_head, q_len;
    int drop;       /* blind and nothing attributable left: ignore what comes */
    /* server -> client */
    unsigned char rx[FZC_RX_CAP];
    size_t rx_len;
    size_t rx_tx;   /* what the server had read when rx[0] was written */
    int close_seen, truncated, shut, corked;
};

static struct fzc_conn *fzc_conns[FZC_MAXCONN + 1]; /* the last one: the other connection */

/* FUZZ_CONN_TRACE=1 in the environment narrates a run (to read a crash) */
#define FZC_TRACE(...)                                                                    \
    do {                                                                                  \
        if (fzc_trace)                                                                    \
            fprintf(stderr, __VA_ARGS__);                                                 \
    } while (0)

#define FZC_FAIL(fc, ...)                                                                 \
    do {                                                                                  \
        fprintf(stderr, "fuzz_conn: connection %d: ", (fc) ? (fc)->id : -1);             \
        fprintf(stderr, __VA_ARGS__);                                                     \
        fprintf(stderr, "\n");                                                            \
        abort();                                                                          \
    } while (0)

static const char *fzc_find(const unsigned char *p, size_t n, const char *s)
{
    size_t k = strlen(s);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(p + i, s, k) == 0)
            return (const char *)p + i;
    return NULL;
}

static int fzc_hdr_is(const char *line, size_t n, const char *name)
{
    size_t k = strlen(name);
    return n > k && line[k] == ':' && strncasecmp(line, name, k) == 0;
}

/* Is body (len bytes at file offset first, of a response that promised
 * total bytes of representation) a slice of a version of file f? */
static void fzc_check_body(struct fzc_conn *fc, int fi, int status, uint64_t first,
                           uint64_t total, const unsigned char *body, size_t len)
{
    struct fzc_file *f = &fzc_files[fi];
    int sized = 0;
    for (int v = 0; v < f->nver; v++)
        if (f->v[v].data && f->v[v].size == total)
            sized = 1;
    if (!sized)
        FZC_FAIL(fc, "%d for /%s: a representation of %llu bytes, no version had that size",
                 status, f->rel, (unsigned long long)total);
    if (first + len > total)
        FZC_FAIL(fc, "%d for /%s: bytes past the end", status, f->rel);
    if (f->max_size <= FZC_CACHED) { /* always served from memory: one version, whole */
        for (int v = 0; v < f->nver; v++)
            if (f->v[v].data && f->v[v].size == total &&
                (!len || memcmp(f->v[v].data + first, body, len) == 0))
                return;
        FZC_FAIL(fc, "%d for /%s: %zu body bytes at %llu are no version of the file", status,
                 f->rel, len, (unsigned long long)first);
    }
    /* sendfile reads the live file: stretches from ever newer versions */
    int cur = 0;
    for (size_t i = 0; i < len; i++) {
        uint64_t at = first + i;
        while (cur < f->nver &&
               !(f->v[cur].data && at < f->v[cur].size && f->v[cur].data[at] == body[i]))
            cur++;
        if (cur == f->nver)
            FZC_FAIL(fc, "%d for /%s: body byte %zu (file offset %llu) is from no version",
                     status, f->rel, i, (unsigned long long)at);
    }
}

/* A multipart/byteranges body (RFC 9110 14.6): each part's Content-Range
 * and bytes must be a slice of a version of file fi. */
static void fzc_check_parts(struct fzc_conn *fc, int fi, const unsigned char *b, size_t n,
                            const char *bd, size_t bdlen)
{
    size_t i = 0;
    int parts = 0;
    for (;;) {
        if (i + 2 <= n && b[i] == '\r' && b[i + 1] == '\n')
            i += 2;
        if (i + 2 + bdlen > n || b[i] != '-' || b[i + 1] != '-' ||
            memcmp(b + i + 2, bd, bdlen) != 0)
            FZC_FAIL(fc, "multipart: no boundary at byte %zu", i);
        i += 2 + bdlen;
        if (i + 2 <= n && b[i] == '-' && b[i + 1] == '-') { /* the close delimiter */
            i += 2;
            if (i + 2 <= n && b[i] == '\r' && b[i + 1] == '\n')
                i += 2;
            if (i != n || parts < 2)
                FZC_FAIL(fc, "multipart: %zu bytes after the end, %d parts", n - i, parts);
            return;
        }
        const char *end = fzc_find(b + i, n - i, "\r\n\r\n");
        if (!end)
            FZC_FAIL(fc, "multipart: a part without a head");
        const char *cr = fzc_find(b + i, (size_t)(end - (const char *)(b + i)), "Content-Range: ");
        unsigned long long first, last, total;
        char tmp[80];
        size_t crl = cr ? (size_t)(end - cr) : 0;
        snprintf(tmp, sizeof tmp, "%.*s", (int)(crl < 79 ? crl : 79), cr ? cr : "");
        if (!cr || sscanf(tmp, "Content-Range: bytes %llu-%llu/%llu", &first, &last, &total) != 3 ||
            last < first || last >= total)
            FZC_FAIL(fc, "multipart: a part without a good Content-Range");
        i = (size_t)(end + 4 - (const char *)b);
        size_t len = (size_t)(last - first + 1);
        if (len > n - i)
            FZC_FAIL(fc, "multipart: a part longer than the body");
        fzc_check_body(fc, fi, 206, first, total, b + i, len);
        i += len;
        parts++;
    }
}

/* Parse what the server wrote so far; final: the server closed the connection. */
static void fzc_parse(struct fzc_conn *fc, int final)
{
    for (;;) {
        if (fc->drop) {
            fc->rx_len = 0;
            return;
        }
        if (!fc->rx_len)
            return;
        if (fc->close_seen)
            FZC_FAIL(fc, "%zu bytes after a response with Connection: close", fc->rx_len);
        const char *end = fzc_find(fc->rx, fc->rx_len, "\r\n\r\n");
        if (!end) {
            if (final) {
                if (!fc->reset && !fc->timed_out && !fc->blind)
                    FZC_FAIL(fc, "the server closed in the middle of a response head");
                fc->truncated = 1;
                fc->rx_len = 0;
            }
            return;
        }
        const char *h = (const char *)fc->rx;
        size_t head_len = (size_t)(end - h) + 4;
        if (head_len < 13 || memcmp(h, "HTTP/1.1 ", 9) != 0 || h[9] < '1' || h[9] > '5' ||
            h[10] < '0' || h[10] > '9' || h[11] < '0' || h[11] > '9' || h[12] != ' ')
            FZC_FAIL(fc, "not a status line: \"%.40s\"", h);
        int status = (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
        int64_t cl = -1;
        int conn_close = 0, chunked = 0, coded = 0;
        uint64_t cr_first = 0, cr_last = 0, cr_total = 0;
        int has_cr = 0;
        const char *boundary = NULL;
        size_t boundary_len = 0;
        const char *etag = NULL;
        size_t etag_len = 0;
        const char *line = (const char *)memchr(h, '\n', head_len) + 1;
        while (line < end + 2) {
            const char *eol = memchr(line, '\n', (size_t)(end + 4 - line));
            if (!eol || eol == line || eol[-1] != '\r')
                FZC_FAIL(fc, "a header line not ended by CRLF");
            size_t n = (size_t)(eol - 1 - line);
            const char *colon = memchr(line, ':', n);
            if (!colon || colon == line || colon + 1 >= line + n || colon[1] != ' ')
                FZC_FAIL(fc, "not a header line: \"%.*s\"", (int)(n > 60 ? 60 : n), line);
            for (const char *p = line; p < colon; p++)
                if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '-'))
                    FZC_FAIL(fc, "a header name with 0x%02x", (unsigned char)*p);
            for (const char *p = colon; p < line + n; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                    FZC_FAIL(fc, "a control byte in a header value");
            const char *val = colon + 2;
            size_t vlen = (size_t)(line + n - val);
            if (fzc_hdr_is(line, n, "Content-Length")) {
                char *e;
                cl = strtoll(val, &e, 10);
                if (e != line + n || cl < 0)
                    FZC_FAIL(fc, "Content-Length \"%.*s\"", (int)vlen, val);
            } else if (fzc_hdr_is(line, n, "Connection")) {
                conn_close = vlen == 5 && strncasecmp(val, "close", 5) == 0;
            } else if (fzc_hdr_is(line, n, "Transfer-Encoding")) {
                chunked = 1;
            } else if (fzc_hdr_is(line, n, "Content-Encoding")) {
                coded = 1; /* (never asked for: no Accept-Encoding is sent) */
            } else if (fzc_hdr_is(line, n, "Content-Type") && vlen > 31 &&
                       strncmp(val, "multipart/byteranges; boundary=", 31) == 0) {
                boundary = val + 31;
                boundary_len = vlen - 31;
            } else if (fzc_hdr_is(line, n, "ETag")) {
                etag = val;
                etag_len = vlen;
            } else if (fzc_hdr_is(line, n, "Content-Range")) {
                unsigned long long a, b, t;
                char tail;
                char tmp[80];
                snprintf(tmp, sizeof tmp, "%.*s", (int)(vlen < 79 ? vlen : 79), val);
                if (sscanf(tmp, "bytes %llu-%llu/%llu%c", &a, &b, &t, &tail) == 3) {
                    cr_first = a;
                    cr_last = b;
                    cr_total = t;
                    has_cr = 1;
                }
            }
            line = eol + 1;
        }
        if (status < 200) { /* interim (100 Continue): the answer follows */
            memmove(fc->rx, fc->rx + head_len, fc->rx_len - head_len);
            fc->rx_len -= head_len;
            continue;
        }
        if (!fc->q_len) {
            if (fc->blind) { /* answers to raw bytes: not attributed */
                fc->drop = 1;
                continue;
            }
            FZC_FAIL(fc, "a %d response to no request", status);
        }
        struct fzc_req *rq = &fc->q[fc->q_head];
        size_t body_len = 0;
        size_t have = fc->rx_len - head_len;
        if (!rq->head && status != 204 && status != 304) {
            if (chunked || cl < 0)
                FZC_FAIL(fc, "a %d response without Content-Length", status);
            body_len = (size_t)cl;
        } else if (rq->head && fc->rx_tx < rq->end && status >= 400 && conn_close && cl > 0) {
            /* an error answer (408, 431...) to a HEAD the server has not
             * read whole: whether it knew the method is not ours to say */
            if (!final)
                return;
            if (have) /* the body, maybe cut by a reset or a deadline */
                body_len = (size_t)cl;
        }
        int cut = 0;
        if (have < body_len) {
            if (!final)
                return; /* more to come */
            cut = 1;
            body_len = have;
        }
        if (rq->plain && rq->expect && status != rq->expect && !fc->timed_out && !fc->reset &&
            !(rq->file >= 0 && fzc_files[rq->file].deleted))
            FZC_FAIL(fc, "a plain %s of %s answered %d, not %d", rq->head ? "HEAD" : "GET",
                     rq->file >= 0 ? fzc_files[rq->file].rel : "?", status, rq->expect);
        if (coded)
            FZC_FAIL(fc, "a %d with a Content-Encoding nobody accepted", status);
        if (rq->file >= 0 && (status == 200 || status == 206)) {
            uint64_t first = 0, total = cl >= 0 ? (uint64_t)cl : 0;
            if (status == 206 && boundary) { /* several ranges: multipart/byteranges */
                if (!rq->head && !cut)
                    fzc_check_parts(fc, rq->file, fc->rx + head_len, body_len, boundary,
                                    boundary_len);
            } else if (status == 206) {
                if (!has_cr || cr_last < cr_first || cr_last >= cr_total ||
                    (cl >= 0 && (uint64_t)cl != cr_last - cr_first + 1))
                    FZC_FAIL(fc, "a 206 with a bad Content-Range");
                first = cr_first;
                total = cr_total;
            }
            if (cl < 0)
                FZC_FAIL(fc, "a %d without Content-Length", status);
            if (boundary && status == 206)
                ; /* checked part by part */
            else if (rq->head)
                fzc_check_body(fc, rq->file, status, first, total, NULL, 0);
            else
                fzc_check_body(fc, rq->file, status, first, total, fc->rx + head_len, body_len);
        }
        if (rq->file >= 0 && etag && etag_len < sizeof fzc_files[0].etag) {
            memcpy(fzc_files[rq->file].etag, etag, etag_len);
            fzc_files[rq->file].etag[etag_len] = 0;
        }
        if (cut) {
            if (!fc->reset && !fc->timed_out && !(rq->file >= 0 && fzc_files[rq->file].changed))
                FZC_FAIL(fc, "a %d response cut short (%zu of %lld body bytes), yet its file "
                             "never changed",
                         status, have, (long long)cl);
            fc->truncated = 1;
        }
        fc->q_head = (fc->q_head + 1) % FZC_MAXQ;
        fc->q_len--;
        size_t used = head_len + body_len;
        memmove(fc->rx, fc->rx + used, fc->rx_len - used);
        fc->rx_len -= used;
        if (conn_close)
            fc->close_seen = 1;
    }
}

static void fzc_take(struct fzc_conn *fc, const void *p, size_t n)
{
    if (fc->shut)
        FZC_FAIL(fc, "a write after shutdown(SHUT_WR)");
    if (fc->drop)
        return;
    if (n > FZC_RX_CAP - fc->rx_len)
        FZC_FAIL(fc, "more than %d bytes of unparsed response", FZC_RX_CAP);
    if (!fc->rx_len)
        fc->rx_tx = fc->tx_off;
    memcpy(fc->rx + fc->rx_len, p, n);
    fc->rx_len += n;
    FZC_TRACE("  [%d] server wrote %zu: \"%.*s\"\n", fc->id, n, (int)(n > 300 ? 300 : n),
              (const char *)p);
}

/* How many of n bytes the next socket call moves: n, fewer (>0), or -1 with
 * errno (EAGAIN, EINTR). scale: the step of a short count. */
static ssize_t fzc_amount(struct fzc_conn *fc, size_t n, size_t scale)
{
    int b = fc->scripted ? fzc_byte() : -1;
    if (b < 0 || n == 0)
        return (ssize_t)n;
    size_t k = (size_t)(b >> 2) + 1;
    switch (b & 3) {
    case 0:
        errno = k == 64 ? EINTR : EAGAIN;
        return -1;
    case 1: break;
    case 2: k *= scale; break;
    default: k = n; break;
    }
    return (ssize_t)(k < n ? k : n);
}

static ssize_t fzc_recv(struct conn *c, void *buf, size_t n)
{
    struct fzc_conn *fc = c->tp_ctx;
    if (fc->reset) {
        errno = ECONNRESET;
        return -1;
    }
    size_t avail = fc->tx_len - fc->tx_off;
    if (!avail) {
        if (fc->eof)
            return 0;
        errno = EAGAIN;
        return -1;
    }
    ssize_t k = fzc_amount(fc, avail < n ? avail : n, 64);
    if (k > 0) {
        memcpy(buf, fc->tx + fc->tx_off, (size_t)k);
        fc->tx_off += (size_t)k;
    }
    return k;
}

static ssize_t fzc_writev(struct conn *c, const struct iovec *iov, int iovcnt)
{
    struct fzc_conn *fc = c->tp_ctx;
    if (fc->reset) {
        errno = EPIPE;
        return -1;
    }
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    ssize_t k = fzc_amount(fc, total, 256);
    if (k < 0)
        return -1;
    size_t left = (size_t)k;
    for (int i = 0; i < iovcnt && left; i++) {
        size_t t = iov[i].iov_len < left ? iov[i].iov_len : left;
        fzc_take(fc, iov[i].iov_base, t);
        left -= t;
    }
    fzc_parse(fc, 0);
    return k;
}

static ssize_t fzc_sendfile(struct conn *c, int in_fd, off_t *off, size_t n)
{
    struct fzc_conn *fc = c->tp_ctx;
    static unsigned char buf[65536];
    if (fc->reset) {
        errno = EPIPE;
        return -1;
    }
    ssize_t k = fzc_amount(fc, n < sizeof buf ? n : sizeof buf, 512);
    if (k < 0)
        return -1;
    ssize_t r = pread(in_fd, buf, (size_t)k, *off);
    if (r < 0)
        return -1;
    fzc_take(fc, buf, (size_t)r);
    *off += r;
    fzc_parse(fc, 0);
    return r;
}

static void fzc_shutdown_wr(struct conn *c)
{
    struct fzc_conn *fc = c->tp_ctx;
    fc->shut = 1;
}

static int fzc_cork(struct conn *c, int on)
{
    struct fzc_conn *fc = c->tp_ctx;
    fc->corked = on;
    return 0;
}

static int fzc_broken(struct conn *c)
{
    struct fzc_conn *fc = c->tp_ctx;
    return fc->reset;
}

static const struct transport fzc_transport = {
    .name = "fuzz",
    .recv = fzc_recv,
    .writev = fzc_writev,
    .sendfile = fzc_sendfile,
    .shutdown_wr = fzc_shutdown_wr,
    .cork = fzc_cork,
    .broken = fzc_broken,
};

static void fzc_open(struct fzc_conn *fc)
{
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC); /* for conn_close() to close */
    if (fd < 0)
        abort();
    union net_addr peer;
    memset(&peer, 0, sizeof peer);
    peer.in4.sin_family = AF_INET;
    peer.in4.sin_addr.s_addr = htonl(0x7f000001);
    peer.in4.sin_port = htons((uint16_t)(40000 + fc->id));
    conn_init(&fc->c, fd, &peer);
    fc->c.tp = &fzc_transport;
    fc->c.tp_ctx = fc;
    fc->open = 1;
    fc->tx_len = fc->tx_off = 0;
    fc->eof = fc->reset = fc->blind = fc->timed_out = 0;
    fc->q_head = fc->q_len = 0;
    fc->drop = 0;
    fc->rx_len = 0;
    fc->close_seen = fc->truncated = fc->shut = fc->corked = 0;
}

static void fzc_close(struct fzc_conn *fc)
{
    conn_close(&fc->c);
    fc->open = 0;
    fzc_parse(fc, 1);
    /* every request that reached the server was answered, unless the server
     * said it would close (or the client reset, or a deadline passed) */
    if (fc->q_len && !fc->close_seen && !fc->truncated && !fc->reset && !fc->timed_out &&
        !fc->blind)
        FZC_FAIL(fc, "closed with %d request(s) unanswered (%zu of %zu bytes read)", fc->q_len,
                 fc->tx_off, fc->tx_len);
}

/* The server steps this connection, as a model does when it is woken. */
static void fzc_step(struct fzc_conn *fc)
{
    if (!fc->open)
        return;
    if (fc->tx_off < fc->tx_len || fc->eof || fc->reset)
        fc->c.readable = 1;
    if (fc->eof && fc->tx_off == fc->tx_len)
        fc->c.rdhup = 1;
    int r = conn_step(&fc->c);
    FZC_TRACE("  [%d] conn_step -> %d\n", fc->id, r);
    if (r == CONN_DONE) {
        fzc_close(fc);
        return;
    }
    if (r != CONN_READ && r != CONN_WRITE)
        FZC_FAIL(fc, "conn_step returned %d", r);
    if (fc->c.wait_fd != fc->c.fd)
        FZC_FAIL(fc, "a static file exchange waits on another descriptor");
    if (r == CONN_READ && conn_is_idle(&fc->c) && fc->corked)
        FZC_FAIL(fc, "idle, and still corked");
}

static void fzc_put(struct fzc_conn *fc, const char *s, size_t n)
{
    if (n > FZC_TX_CAP - fc->tx_len)
        n = FZC_TX_CAP - fc->tx_len;
    memcpy(fc->tx + fc->tx_len, s, n);
    fc->tx_len += n;
}

static void fzc_puts(struct fzc_conn *fc, const char *s)
{
    fzc_put(fc, s, strlen(s));
}

/* A number for a range bound: small, in pages, across the files, or an edge. */
static unsigned long fzc_num(unsigned b)
{
    static const unsigned long edge[] = {0, 1, 8191, 8192, 8193, 11999, 12000, 19999};
    switch (b >> 6) {
    case 0: return b & 63;
    case 1: return (b & 63) * 64;
    case 2: return (b & 63) * 331;
    default: return edge[b & 7];
    }
}

static const char *const fzc_raw_names[] = {
    "X-Fuzz", "Range", "If-None-Match", "If-Range", "If-Match", "If-Modified-Since",
    "If-Unmodified-Since", "Connection", "Host", "Accept", "Expect", "Transfer-Encoding",
};

/* One request from the spec bytes (b1: method and flags, b2: target,
 * b3: variant); the arguments it needs come from the script. */
static void fzc_request(struct fzc_conn *fc, unsigned b1, unsigned b2, unsigned b3)
{
    if (fc->q_len >= FZC_MAXQ || fc->tx_len > FZC_TX_CAP - 1024)
        return;
    const struct fzc_target *t = &fzc_targets[b2 % (unsigned)fzc_ntargets];
    struct fzc_req rq = {t->file, t->expect, 0, 1, 0};
    char line[256];
    const char *method = "GET";
    int body = -1, chunked_body = 0, expect_100 = 0, framing = 0;
    if ((b1 & 3) == 2) {
        method = "HEAD";
        rq.head = 1;
    } else if ((b1 & 3) == 3) {
        rq.plain = 0;
        switch (b3 % 6) {
        case 0: method = "POST"; body = (int)(b3 >> 3); break;
        case 1: method = "POST"; chunked_body = 1; break;
        case 2: body = (int)(b3 >> 3); break; /* a GET with a body */
        case 3: method = "OPTIONS"; break;
        case 4: method = "DELETE"; break;
        default: body = (int)(b3 >> 3); expect_100 = 1; break;
        }
    }
    int http10 = (b1 & 0x20) != 0;
    snprintf(line, sizeof line, "%s %s HTTP/1.%d\r\nHost: fz\r\n", method, t->path, http10 ? 0 : 1);
    fzc_puts(fc, line);
    if (b1 & 0x40) {
        fzc_puts(fc, http10 ? "Connection: keep-alive\r\n" : "Connection: close\r\n");
    }
    const char *etag = t->file >= 0 ? fzc_files[t->file].etag : "";
    if (b1 & 4) { /* Range */
        rq.plain = 0;
        unsigned r = fzc_arg(), x = fzc_arg(), y = fzc_arg();
        unsigned long a = fzc_num(x), n = fzc_num(y);
        switch (r & 7) {
        case 0: snprintf(line, sizeof line, "Range: bytes=%lu-%lu\r\n", a, a + n); break;
        case 1: snprintf(line, sizeof line, "Range: bytes=%lu-\r\n", a); break;
        case 2: snprintf(line, sizeof line, "Range: bytes=-%lu\r\n", n); break;
        case 3: snprintf(line, sizeof line, "Range: bytes=%lu-%lu,%lu-\r\n", a, a + 1, n); break;
        case 4: snprintf(line, sizeof line, "Range: bytes=%lu-%lu\r\n", a + n, a); break;
        case 5: snprintf(line, sizeof line, "Range: items=0-1\r\n"); break;
        case 6: snprintf(line, sizeof line, "Range: bytes=0-0\r\n"); break;
        default: snprintf(line, sizeof line, "Range: bytes=x-%lu\r\n", n); break;
        }
        fzc_puts(fc, line);
    }
    if (b1 & 8) { /* If-None-Match: the ETag seen last, a list, or "*" */
        rq.plain = 0;
        unsigned v = fzc_arg();
        if (!*etag || (v & 3) == 0)
            snprintf(line, sizeof line, "If-None-Match: *\r\n");
        else if ((v & 3) == 1)
            snprintf(line, sizeof line, "If-None-Match: %s\r\n", etag);
        else if ((v & 3) == 2)
            snprintf(line, sizeof line, "If-None-Match: \"x\", W/%s\r\n", etag);
        else
            snprintf(line, sizeof line, "If-Match: %s\r\n", etag);
        fzc_puts(fc, line);
    }
    if (b1 & 0x10) { /* If-Range: the ETag seen last, a stale one, or a date */
        rq.plain = 0;
        unsigned v = fzc_arg();
        if (*etag && (v & 3) < 2)
            snprintf(line, sizeof line, "If-Range: %s\r\n", etag);
        else if ((v & 3) == 2)
            snprintf(line, sizeof line, "If-Range: \"0-0\"\r\n");
        else
            snprintf(line, sizeof line, "If-Range: Thu, 01 Jan 2099 00:00:00 GMT\r\n");
        fzc_puts(fc, line);
    }
    if (b1 & 0x80) { /* a header line with fuzzed bytes (no line break in it) */
        rq.plain = 0;
        unsigned nb = fzc_arg() % (sizeof fzc_raw_names / sizeof fzc_raw_names[0]);
        framing = strcmp(fzc_raw_names[nb], "Transfer-Encoding") == 0;
        fzc_puts(fc, fzc_raw_names[nb]);
        fzc_puts(fc, ": ");
        unsigned len = fzc_arg() % 24;
        for (unsigned i = 0; i < len; i++) {
            int c = fzc_byte();
            char ch = c < 0 ? 'x' : (char)c;
            if (ch == '\r' || ch == '\n')
                ch = ' ';
            fzc_put(fc, &ch, 1);
        }
        fzc_puts(fc, "\r\n");
    }
    if (expect_100)
        fzc_puts(fc, "Expect: 100-continue\r\n");
    if (chunked_body) {
        fzc_puts(fc, "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    } else if (body >= 0) {
        snprintf(line, sizeof line, "Content-Length: %d\r\n\r\n", body);
        fzc_puts(fc, line);
        for (int i = 0; i < body; i++)
            fzc_put(fc, "b", 1);
    } else {
        fzc_puts(fc, "\r\n");
    }
    rq.end = fc->tx_len;
    FZC_TRACE("  [%d] request %s %s (%s)\n", fc->id, method, t->path,
              fc->blind ? "blind" : rq.plain ? "plain" : "not plain");
    if (fc->blind)
        return; /* after raw bytes the answers are not attributed */
    fc->q[(fc->q_head + fc->q_len) % FZC_MAXQ] = rq;
    fc->q_len++;
    if (framing) /* a fuzzed Transfer-Encoding: what follows may be taken for a body */
        fc->blind = 1;
}

/* A client may send on fc: open a new connection if the server closed the last. */
static int fzc_can_send(struct fzc_conn *fc)
{
    if (!fc->open)
        fzc_open(fc);
    return !fc->eof && !fc->reset;
}

/* Another connection of this worker fetches target t, whole: a cache slot is
 * (re)filled, and what another response pointed into may be released. */
static void fzc_other(unsigned t)
{
    struct fzc_conn *fc = fzc_conns[FZC_MAXCONN];
    fzc_open(fc);
    fzc_request(fc, 0, t, 0);
    fc->eof = 1;
    for (int i = 0; i < 16 && fc->open; i++)
        fzc_step(fc);
    if (fc->open)
        FZC_FAIL(fc, "the other connection did not finish");
}

/* File fi changes: rewritten in place, replaced by a rename, or deleted. */
static void fzc_change(unsigned fi, unsigned how, unsigned sz)
{
    struct fzc_file *f = &fzc_files[fi % FZC_NFILES];
    if (fzc_nchanges >= FZC_MAXCHANGES || f->nver >= FZC_MAXV)
        return;
    fzc_nchanges++;
    f->changed = 1;
    struct fzc_ver *v = &f->v[f->nver];
    struct fzc_ver *last = &f->v[f->nver - 1];
    if ((how & 3) == 2 && last->data) {
        if (unlinkat(fzc_rootfd, f->rel, 0) < 0)
            abort();
        v->data = NULL;
        v->size = 0;
        f->deleted = 1;
        f->nver++;
        return;
    }
    size_t size = fzc_new_size[sz % (sizeof fzc_new_size / sizeof fzc_new_size[0])];
    if ((how & 3) == 3 && last->data)
        size = last->size; /* same size, new bytes: only the mtime may tell */
    v->size = size;
    v->data = fzc_make((uint32_t)(fi % FZC_NFILES) * 4096u + ++fzc_serial, size);
    if (size > f->max_size)
        f->max_size = size;
    f->nver++;
    fzc_write_file(f->rel, v->data, size, (how & 3) == 1);
}

static void fzc_end_input(void)
{
    for (int i = 0; i < FZC_NFILES; i++) {
        struct fzc_file *f = &fzc_files[i];
        if (f->changed)
            fzc_write_file(f->rel, f->v[0].data, f->v[0].size, 0);
        for (int v = 1; v < f->nver; v++)
            free(f->v[v].data);
        f->nver = 1;
        f->changed = f->deleted = 0;
        f->max_size = f->v[0].size;
        f->etag[0] = 0;
    }
    fzc_nchanges = 0;
    fzc_serial = 0;
    conn_pool_free();
    h_static_cache_free();
    for (int fd = fzc_fdmax + 1; fd <= fzc_fdmax + 64; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            FZC_FAIL((struct fzc_conn *)NULL, "descriptor %d left open after the input", fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fzc_setup();
    for (int i = 0; i <= FZC_MAXCONN; i++) {
        if (!fzc_conns[i] && !(fzc_conns[i] = calloc(1, sizeof *fzc_conns[i])))
            abort();
        fzc_conns[i]->id = i;
        fzc_conns[i]->open = 0;
        fzc_conns[i]->scripted = i < FZC_MAXCONN;
    }
    fzc_in.p = data;
    fzc_in.n = size;
    fzc_in.i = 0;
    int nconn = 2 + (int)(fzc_arg() % (FZC_MAXCONN - 1)); /* 2..4 */
    for (int i = 0; i < nconn; i++)
        fzc_open(fzc_conns[i]);

    for (int ops = 0; ops < FZC_MAXOPS; ops++) {
        int o = fzc_byte();
        if (o < 0)
            break;
        struct fzc_conn *fc = fzc_conns[(o >> 3) % nconn];
        FZC_TRACE("op %d on connection %d (script at %zu)\n", o & 7, fc->id, fzc_in.i);
        switch (o & 7) {
        case 0:
        case 1: { /* a request */
            unsigned b1 = fzc_arg(), b2 = fzc_arg(), b3 = fzc_arg();
            if (fzc_can_send(fc))
                fzc_request(fc, b1, b2, b3);
            break;
        }
        case 2:
        case 3: /* the server steps the connection */
            fzc_step(fc);
            break;
        case 4: { /* pipelined: the same request 2..9 times */
            unsigned n = 2 + fzc_arg() % 8, b1 = fzc_arg(), b2 = fzc_arg(), b3 = fzc_arg();
            b1 &= ~0x98u; /* the copies differ at most in their ranges */
            for (unsigned i = 0; i < n && fzc_can_send(fc); i++)
                fzc_request(fc, b1, b2, b3);
            break;
        }
        case 5: /* another connection fetches a file */
            fzc_other(fzc_arg());
            break;
        case 6: { /* a file changes */
            unsigned fi = fzc_arg(), how = fzc_arg(), sz = fzc_arg();
            fzc_change(fi, how, sz);
            break;
        }
        default: { /* the client: raw bytes, a half-close, a reset; or a deadline passes */
            unsigned what = fzc_arg();
            switch (what & 3) {
            case 0: {
                unsigned n = fzc_arg() % 64;
                if (!fzc_can_send(fc))
                    break;
                for (unsigned i = 0; i < n; i++) {
                    int c = fzc_byte();
                    char ch = (char)(c < 0 ? '\n' : c);
                    fzc_put(fc, &ch, 1);
                }
                fc->blind = 1;
                break;
            }
            case 1:
                if (fc->open)
                    fc->eof = 1;
                break;
            case 2:
                if (fc->open)
                    fc->reset = 1;
                break;
            default:
                if (fc->open) {
                    fc->timed_out = 1;
                    conn_timeout(&fc->c);
                    fzc_step(fc);
                }
                break;
            }
            break;
        }
        }
    }

    /* the clients read everything now, and half-close once all is sent */
    fzc_in.i = fzc_in.n;
    for (int i = 0; i < nconn; i++) {
        struct fzc_conn *fc = fzc_conns[i];
        for (int k = 0; k < 256 && fc->open; k++) {
            if (fc->tx_off == fc->tx_len)
                fc->eof = 1;
            fzc_step(fc);
        }
        if (fc->open)
            FZC_FAIL(fc, "did not finish with a client that reads everything");
    }
    fzc_end_input();
    return 0;
}
