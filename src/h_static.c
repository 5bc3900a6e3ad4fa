/* h_static.c - static files under a root: confinement, index, MIME types,
 * ETag/Last-Modified and the conditional requests, byte ranges (one, or
 * several as multipart/byteranges), precompressed sidecars and compression
 * on the fly (kept in the open-file cache), extra headers, error pages, an
 * SPA fallback, optional directory listings. Returns a file body; conn.c
 * sends it with sendfile. The rules are in docs/static.md. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "accept_enc.h"
#include "compress.h"
#include "confine.h"
#include "handler.h"
#include "clock.h"
#include "http_resp.h"
#include "log.h"
#include "mime.h"

/* ---- dotfiles ---- */

/* Is rel (the path inside the mount, no leading '/') a dotfile or inside a
 * dot directory (.git/, .env, .htpasswd...)? The normaliser has removed "."
 * and ".." segments (also encoded ones, %2e), so every '.' that starts a
 * segment here starts a name. The top-level ".well-known" is exempt
 * (RFC 8615: ACME challenges, security.txt); the names under it are not. */
static int is_dotpath(const char *rel)
{
    const char *p = rel;
    if (strncmp(p, ".well-known", 11) == 0 && (p[11] == '/' || p[11] == 0))
        p += 11;
    for (; *p; p++)
        if (*p == '.' && (p == rel || p[-1] == '/'))
            return 1;
    return 0;
}

/* Is a directory entry shown, given the directory's path inside the mount? */
static int dotname_listed(const char *dirrel, const char *name)
{
    return name[0] != '.' || cfg.allow_dotfiles ||
           (dirrel[0] == 0 && strcmp(name, ".well-known") == 0);
}

/* ---- validators ---- */

/* Does an If-None-Match / If-Match list match our etag? weak: compare
 * ignoring "W/" (RFC 9110 8.8.3.2); strong: a weak tag never matches. */
static int etag_list_match(struct http_str v, const char *etag, int weak)
{
    const char *p = v.p, *end = v.p + v.len;
    size_t elen = strlen(etag);
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        if (p == end)
            break;
        if (*p == '*')
            return 1;
        int is_weak = 0;
        if (end - p >= 2 && p[0] == 'W' && p[1] == '/') {
            is_weak = 1;
            p += 2;
        }
        if (p == end || *p != '"')
            return 0; /* malformed list: no match */
        const char *q = memchr(p + 1, '"', (size_t)(end - p - 1));
        if (!q)
            return 0;
        size_t tl = (size_t)(q - p + 1);
        if ((weak || !is_weak) && tl == elen && memcmp(p, etag, elen) == 0)
            return 1;
        p = q + 1;
    }
    return 0;
}

static int header_date(const struct http_req *h, const char *name, time_t *t)
{
    const struct http_header *f = http_req_header(h, name);
    return f && http_date_parse(f->value.p, f->value.len, t) == 0;
}

/* ---- directory listing ---- */

static void put_html(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

static void put_url(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~')
            fputc(c, f);
        else
            fprintf(f, "%%%02X", c);
    }
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

#define LIST_MAX 10000

/* The listing of the directory dfd, whose path inside the mount is dirrel
 * ("" or "dir/"). Dotfiles are left out unless they would be served
 * (--allow-dotfiles). A symlink shows its target's size and date only when
 * the target is inside the root: one leading outside (or nowhere) shows
 * "-" for both, so the listing tells nothing about files beyond the root. */
/* Render the listing into a new blob (NULL on failure). */
static struct blob *autoindex_build(const struct request *req, int dfd, const char *dirrel)
{
    int fd2 = dup(dfd);
    DIR *d = fd2 >= 0 ? fdopendir(fd2) : NULL;
    if (!d) {
        if (fd2 >= 0)
            close(fd2);
        return NULL;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < LIST_MAX) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            !dotname_listed(dirrel, e->d_name))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn)
                break;
            names = nn;
        }
        names[n] = strdup(e->d_name);
        if (names[n])
            n++;
    }
    if (n > 1) /* names is NULL for an empty directory: qsort(NULL, 0) is undefined */
        qsort(names, n, sizeof *names, cmp_names);

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f) {
        fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of ", f);
        put_html(f, req->path);
        fputs("</title></head>\n<body><h1>Index of ", f);
        put_html(f, req->path);
        fputs("</h1><hr><pre>\n", f);
        if (req->path_len > 1)
            fputs("<a href=\"../\">../</a>\n", f);
        for (size_t i = 0; i < n; i++) {
            struct stat st;
            if (fstatat(dirfd(d), names[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
                continue; /* raced away */
            int known = 1;
            if (S_ISLNK(st.st_mode)) { /* the target, if it is inside the root */
                char rel[PATH_MAX + 256];
                int lfd = -1;
                if ((size_t)snprintf(rel, sizeof rel, "%s%s", dirrel, names[i]) < sizeof rel)
                    lfd = confine_open(req->mount->dir_fd, rel, O_PATH);
                known = lfd >= 0 && confine_fstat(lfd, &st) == 0;
                if (lfd >= 0)
                    close(lfd);
            }
            int isdir = known && S_ISDIR(st.st_mode);
            char date[32] = "-";
            if (known)
                http_date_fmt(st.st_mtime, date);
            fputs("<a href=\"", f);
            put_url(f, names[i]);
            fputs(isdir ? "/\">" : "\">", f);
            put_html(f, names[i]);
            fprintf(f, "%s</a>  %s  ", isdir ? "/" : "", date);
            if (isdir || !known)
                fputs("-\n", f);
            else
                fprintf(f, "%lld\n", (long long)st.st_size);
        }
        fputs("</pre><hr></body></html>\n", f);
        fclose(f);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    struct blob *b = buf ? blob_new(len) : NULL;
    if (b)
        memcpy(b->data, buf, len);
    free(buf);
    return b;
}

/* Listings are kept, like files: a directory of LIST_MAX entries costs a
 * readdir, a sort and LIST_MAX fstatat calls, and doing that for every
 * request would stall an event worker for every other connection. A kept
 * listing is used while the directory is the same (device, inode, mtime: an
 * entry added, removed or renamed changes it) and for at most the second it
 * was made in (a file's new size or date shows within a second). At most
 * LC_SLOTS listings per process; the responses that send one pin it. */
#define LC_SLOTS 8

static struct lc_ent {
    const struct mount *m;
    char *path;      /* the request path it lists (NULL: empty slot) */
    dev_t dev;
    ino_t ino;
    struct timespec mtim;
    time_t built;
    struct blob *html;
} lcache[LC_SLOTS];
static unsigned lc_next;

static void lc_drop(struct lc_ent *e)
{
    free(e->path);
    e->path = NULL;
    blob_unref(e->html);
    e->html = NULL;
}

/* (not inlined: its PATH_MAX buffer would deepen the stack of every file
 * served by one more page, which a fork child faults in, issue 19) */
static __attribute__((noinline)) void autoindex(const struct request *req, int dfd,
                                                const char *dirrel, struct response *resp)
{
    struct stat st;
    if (confine_fstat(dfd, &st) < 0) {
        resp_error(resp, 500);
        return;
    }
    time_t now = time(NULL);
    struct lc_ent *e = NULL;
    for (int i = 0; i < LC_SLOTS; i++)
        if (lcache[i].path && lcache[i].m == req->mount && strcmp(lcache[i].path, req->path) == 0)
            e = &lcache[i];
    if (!e || e->dev != st.st_dev || e->ino != st.st_ino || e->built != now ||
        e->mtim.tv_sec != st.st_mtim.tv_sec || e->mtim.tv_nsec != st.st_mtim.tv_nsec) {
        struct blob *b = autoindex_build(req, dfd, dirrel);
        if (!b) {
            resp_error(resp, 500);
            return;
        }
        if (!e)
            e = &lcache[lc_next++ % LC_SLOTS];
        lc_drop(e);
        e->path = strdup(req->path);
        e->m = req->mount;
        e->dev = st.st_dev;
        e->ino = st.st_ino;
        e->mtim = st.st_mtim;
        e->built = now;
        e->html = b;
        if (!e->path) { /* not kept: this response holds the only reference */
            resp_pinned(resp, 200, "text/html; charset=utf-8", b, 0, b->len);
            lc_drop(e);
            return;
        }
    }
    resp_pinned(resp, 200, "text/html; charset=utf-8", e->html, 0, e->html->len);
}

/* ---- the open-file cache ----
 *
 * Hot files are served without open/fstat/pread: each process keeps a small
 * direct-mapped table of open files with their validators and pre-rendered
 * header lines, and the bytes of small files. It notices changes: an fstat
 * of the open file at most once per clock tick (an edit in place shows in
 * mtime/size within milliseconds), and a stat of the path at most once a
 * second (a file replaced by a rename or deleted is dropped within a second).
 *
 * Encodings: a precompressed sidecar (file.br, file.gz) is an entry of its
 * own in a second table (so caching one never evicts the file it belongs
 * to), with its coding and the original's type. A variant compressed on the
 * fly lives in the original's entry (z[]), built at its first request and
 * kept until the file changes, within --compress-cache bytes per process. */

#define FC_SLOTS 128
#define FC_PATH 240
#define FC_DATA 8192 /* files up to this size are kept in memory */
#define FC_HDR 320
#define COMPRESS_MAX (1 << 20) /* larger files are never compressed on the fly */

struct fc_z {                /* one coding made on the fly */
    struct blob *data;       /* NULL: not made yet */
    int failed;              /* not worth it (no smaller), or failed: don't retry */
    char hdr[FC_HDR];
    size_t hdr_len;
    char etag[80];
};

struct fc_ent {
    const struct mount *m; /* NULL: empty slot */
    char rel[FC_PATH];
    enum content_coding enc; /* a sidecar's coding; ENC_IDENTITY for a file */
    int fd;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtim;
    time_t checked; /* second of the last path stat */
    uint64_t fstat_ms; /* coarse millisecond of the last fstat */
    const char *type;
    unsigned side;  /* a file with --precompressed: ENC_BIT of the sidecars found */
    int zok;        /* a file with --compress: of a type and size worth compressing */
    char etag[80];
    char hdr[FC_HDR]; /* Last-Modified, ETag, Accept-Ranges (Content-Encoding, Vary) lines */
    size_t hdr_len;
    /* The file's bytes when size <= FC_DATA. The cache holds one reference;
     * a response that sends them pins its own (resp_pinned), so dropping or
     * refilling the entry never frees bytes a waiting response still sends. */
    struct blob *data;
    struct fc_z z[ENC_COUNT]; /* [ENC_GZIP], [ENC_BR] */
};

_Static_assert(FC_DATA <= FH_SMALL_BODY, "a cached body is copied next to its head (conn.c)");
_Static_assert(FC_HDR <= RESP_HDR_CAP, "an entry's header lines fit a response");

static struct fc_ent fcache[FC_SLOTS], fside[FC_SLOTS];
static int64_t fc_zbytes; /* bytes of z[] variants kept, bounded by --compress-cache */

static const char *const enc_ext[ENC_COUNT] = {"", ".gz", ".br"};

static struct fc_ent *fc_slot(const struct mount *m, const char *rel, enum content_coding enc)
{
    unsigned h = 2166136261u ^ (unsigned)(uintptr_t)m ^ (unsigned)enc;
    for (; *rel; rel++)
        h = (h ^ (unsigned char)*rel) * 16777619u;
    return enc ? &fside[h % FC_SLOTS] : &fcache[h % FC_SLOTS];
}

static void fc_zdrop(struct fc_ent *e)
{
    for (int i = 0; i < ENC_COUNT; i++) {
        if (e->z[i].data)
            fc_zbytes -= (int64_t)e->z[i].data->len;
        blob_unref(e->z[i].data);
        e->z[i].data = NULL;
        e->z[i].failed = 0;
    }
}

static void fc_drop(struct fc_ent *e)
{
    if (!e->m)
        return;
    close(e->fd);
    blob_unref(e->data);
    e->data = NULL;
    fc_zdrop(e);
    e->m = NULL;
}

/* Which sidecars of the file rel exist (regular files, not older than it). */
static unsigned fc_probe(const struct mount *m, const char *rel, const struct timespec *mtim)
{
    unsigned side = 0;
    char p[FC_PATH + 4];
    for (int enc = ENC_GZIP; enc < ENC_COUNT; enc++) {
        struct stat st;
        if ((size_t)snprintf(p, sizeof p, "%s%s", rel, enc_ext[enc]) >= sizeof p)
            continue;
        if (fstatat(m->dir_fd, p, &st, 0) == 0 && S_ISREG(st.st_mode) &&
            (st.st_mtim.tv_sec > mtim->tv_sec ||
             (st.st_mtim.tv_sec == mtim->tv_sec && st.st_mtim.tv_nsec >= mtim->tv_nsec)))
            side |= ENC_BIT(enc);
    }
    return side;
}

static char *put_str(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

static char *put_hex(char *p, unsigned long long v)
{
    char tmp[16];
    int n = 0;
    do
        tmp[n++] = "0123456789abcdef"[v & 15];
    while (v >>= 4);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* '"' + three 16-digit numbers, '.', '-', "-gz", '"' and the NUL; and the
 * header lines below with the longest of each */
_Static_assert(sizeof ((struct fc_ent *)0)->etag >= 3 * 16 + 8, "an ETag fits");
_Static_assert(sizeof ((struct fc_z *)0)->etag >= 3 * 16 + 9, "a variant's ETag fits");
_Static_assert(FC_HDR >= sizeof "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\nETag: \r\n"
                                "Accept-Ranges: bytes\r\nContent-Encoding: gzip\r\n"
                                "Vary: Accept-Encoding\r\n" + 3 * 16 + 8,
               "an entry's header lines fit");

/* An ETag: the file's mtime (seconds.nanoseconds) and size in hex, then the
 * coding's suffix, quoted. One rule for every variant of an entry. */
static void etag_of(char *out, const struct fc_ent *e, const char *suffix)
{
    char *p = out;
    *p++ = '"';
    p = put_hex(p, (unsigned long long)e->mtim.tv_sec);
    *p++ = '.';
    p = put_hex(p, (unsigned long)e->mtim.tv_nsec);
    *p++ = '-';
    p = put_hex(p, (unsigned long long)e->size);
    p = put_str(p, suffix);
    *p++ = '"';
    *p = 0;
}

/* The header lines of a representation into out (FC_HDR: the assert
 * above): Last-Modified and ETag, Accept-Ranges when ranges are served on
 * it, its Content-Encoding, Vary. Their length. */
static size_t hdr_lines(char *out, const char *lastmod, const char *etag, int ranges,
                        enum content_coding enc, int vary)
{
    char *p = put_str(out, "Last-Modified: ");
    p = put_str(p, lastmod);
    p = put_str(p, "\r\nETag: ");
    p = put_str(p, etag);
    p = put_str(p, "\r\n");
    if (ranges)
        p = put_str(p, "Accept-Ranges: bytes\r\n");
    if (enc != ENC_IDENTITY) {
        p = put_str(p, "Content-Encoding: ");
        p = put_str(p, accept_enc_name(enc));
        p = put_str(p, "\r\n");
    }
    if (vary)
        p = put_str(p, "Vary: Accept-Encoding\r\n");
    return (size_t)(p - out);
}

/* The validators and header lines, from the entry's state. Each coding has
 * its own ETag (the file's, with "-gz"/"-br"), so a cache holding one
 * variant never gets a 304 for another. Built with memcpy, not snprintf:
 * a fork child formats one file's, and printf's code is pages it would
 * fault in (issue 19). */
static void fc_headers(struct fc_ent *e)
{
    char lastmod[32];
    http_date_fmt(e->mtim.tv_sec, lastmod);
    int vary = e->enc != ENC_IDENTITY || (cfg.precompressed && e->side) || e->zok;
    etag_of(e->etag, e, e->enc == ENC_GZIP ? "-gz" : e->enc == ENC_BR ? "-br" : "");
    e->hdr_len = hdr_lines(e->hdr, lastmod, e->etag, 1, e->enc, vary);
    for (int i = ENC_GZIP; e->zok && i < ENC_COUNT; i++) { /* only sent when zok */
        struct fc_z *z = &e->z[i];
        etag_of(z->etag, e, i == ENC_GZIP ? "-zgz" : "-zbr");
        z->hdr_len = hdr_lines(z->hdr, lastmod, z->etag, 0, (enum content_coding)i, 1);
    }
}

/* Is the file worth compressing on the fly? (--compress; docs/static.md) */
static int fc_zok(const struct fc_ent *e, const char *rel)
{
    size_t rl = strlen(rel);
    return cfg.compress && e->enc == ENC_IDENTITY && compress_type_ok(e->type) &&
           e->size >= cfg.compress_min && e->size <= COMPRESS_MAX &&
           !(rl > 5 && strcasecmp(rel + rl - 5, ".svgz") == 0);
}

/* (Re)compute what depends on the file's state; keep the bytes of a small
 * file when with_data. 0, or -1 (entry dropped). m is NULL for an entry
 * outside the cache (no sidecars, no compression). */
static int fc_fill(struct fc_ent *e, const struct stat *st, int with_data,
                   const struct mount *m, const char *rel)
{
    e->dev = st->st_dev;
    e->ino = st->st_ino;
    e->size = st->st_size;
    e->mtim = st->st_mtim;
    e->side = m && cfg.precompressed && e->enc == ENC_IDENTITY ? fc_probe(m, rel, &e->mtim) : 0;
    e->zok = m ? fc_zok(e, rel) : 0;
    fc_zdrop(e);
    fc_headers(e);
    blob_unref(e->data); /* responses that pinned the old bytes keep them */
    e->data = NULL;
    if (with_data && st->st_size <= FC_DATA) {
        e->data = blob_new((size_t)st->st_size);
        if (!e->data || pread(e->fd, e->data->data, (size_t)st->st_size, 0) != st->st_size) {
            fc_drop(e);
            return -1;
        }
    }
    return 0;
}

static void fc_insert(const struct mount *m, const char *rel, enum content_coding enc,
                      const char *type, int fd, const struct stat *st)
{
    if (strlen(rel) >= FC_PATH)
        return;
    int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0)
        return;
    struct fc_ent *e = fc_slot(m, rel, enc);
    fc_drop(e);
    e->m = m;
    snprintf(e->rel, sizeof e->rel, "%s", rel);
    e->enc = enc;
    e->fd = dup_fd;
    e->checked = time(NULL);
    e->fstat_ms = 0;
    e->type = type;
    fc_fill(e, st, 1, m, rel);
}

/* A valid cache entry for (m, rel, enc), or NULL. */
static struct fc_ent *fc_lookup(const struct mount *m, const char *rel, enum content_coding enc)
{
    struct fc_ent *e = fc_slot(m, rel, enc);
    if (e->m != m || e->enc != enc || strcmp(e->rel, rel) != 0)
        return NULL;
    struct stat st;
    time_t now = time(NULL);
    if (now != e->checked) { /* has the path been replaced or removed? */
        if (fstatat(m->dir_fd, rel, &st, 0) < 0 || st.st_ino != e->ino || st.st_dev != e->dev) {
            fc_drop(e);
            return NULL;
        }
        e->checked = now;
        if (cfg.precompressed && enc == ENC_IDENTITY) { /* sidecars added or removed */
            unsigned side = fc_probe(m, rel, &e->mtim);
            if (side != e->side) {
                e->side = side;
                fc_headers(e);
            }
        }
    }
    /* an fstat per clock tick, not per request: pipelined requests for the
     * same file (one read, one write) share one */
    uint64_t ms = now_ms();
    if (ms == e->fstat_ms)
        return e;
    e->fstat_ms = ms;
    if (confine_fstat(e->fd, &st) < 0 || !(st.st_mode & (S_IRUSR | S_IRGRP | S_IROTH))) {
        fc_drop(e);
        return NULL;
    }
    if (st.st_size != e->size || st.st_mtim.tv_sec != e->mtim.tv_sec ||
        st.st_mtim.tv_nsec != e->mtim.tv_nsec) {
        if (fc_fill(e, &st, 1, m, rel) < 0)
            return NULL;
    }
    return e;
}

void h_static_cache_free(void)
{
    for (int i = 0; i < LC_SLOTS; i++)
        lc_drop(&lcache[i]);
    for (int i = 0; i < FC_SLOTS; i++) {
        fc_drop(&fcache[i]);
        fc_drop(&fside[i]);
    }
}

/* A cached (or opened) regular file under the root, for error pages, the
 * fallback and sidecars: NULL when it is missing, unreadable or not
 * cacheable (a long path). */
static struct fc_ent *fc_get(const struct mount *m, const char *rel, enum content_coding enc,
                             const char *type)
{
    struct fc_ent *e = fc_lookup(m, rel, enc);
    if (e || strlen(rel) >= FC_PATH)
        return e;
    int fd = confine_open(m->dir_fd, rel, O_RDONLY | O_NONBLOCK);
    struct stat st;
    if (fd < 0)
        return NULL;
    if (confine_fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & (S_IRUSR | S_IRGRP | S_IROTH)))
        fc_insert(m, rel, enc, type ? type : mime_lookup(rel, strlen(rel)), fd, &st);
    close(fd);
    return fc_lookup(m, rel, enc);
}

/* ---- what a response sends: one representation of the file ---- */

struct rep {
    const char *type;
    const char *etag;
    const char *hdr;
    size_t hdr_len;
    off_t size;
    time_t mtime;
    struct blob *data; /* the bytes in memory, or NULL: the file at fd */
    int fd;            /* the cache's fd (dup'd for the response) or the request's own */
    int own_fd;        /* fd is this request's (uncached): the response takes it */
    int ranges;        /* byte ranges of it may be served */
};

static void rep_of(const struct fc_ent *e, struct rep *r)
{
    r->type = e->type;
    r->etag = e->etag;
    r->hdr = e->hdr;
    r->hdr_len = e->hdr_len;
    r->size = e->size;
    r->mtime = e->mtim.tv_sec;
    r->data = e->data;
    r->fd = e->fd;
    r->own_fd = 0;
    r->ranges = 1;
}

/* The variant compressed on the fly, made now if it is not kept yet. A
 * response pins it; when keeping it would pass --compress-cache, it is made
 * for this response only (returned in *once, to be unref'd). NULL: send the
 * file as it is. */
static struct fc_z *fc_zget(struct fc_ent *e, enum content_coding enc, struct blob **once)
{
    struct fc_z *z = &e->z[enc];
    *once = NULL;
    if (z->data || z->failed)
        return z->data ? z : NULL;
    char *buf = e->data ? NULL : malloc((size_t)e->size ? (size_t)e->size : 1);
    const char *src = e->data ? e->data->data : buf;
    if (!src || (!e->data && pread(e->fd, buf, (size_t)e->size, 0) != e->size)) {
        free(buf);
        return NULL;
    }
    struct blob *b = compress_buf(enc, src, (size_t)e->size);
    free(buf);
    if (!b) {
        z->failed = 1; /* incompressible: not tried again until the file changes */
        return NULL;
    }
    if (fc_zbytes + (int64_t)b->len > cfg.compress_cache) {
        *once = b;
        return z;
    }
    fc_zbytes += (int64_t)b->len;
    z->data = b;
    return z;
}

/* The 301 that adds a directory's trailing slash. Location is built from the
 * normalised path, never from the raw target: "//evil.example/..//dir" is
 * the directory /dir, and echoing the raw path would send a browser to
 * another host ("//host/..." is a scheme-relative URL; browsers read "/\host"
 * the same way). It starts with exactly one '/' and is percent-encoded (all
 * but unreserved characters, '/' and the sub-delims, ':' and '@'), so '\',
 * '%', '?', '#', spaces, control bytes and non-ASCII in a name come back as
 * the same name. The query is kept as it came. Too long for a header: 414. */
static __attribute__((noinline)) void redirect_slash(const struct request *req,
                                                     struct response *resp)
{ /* (not inlined, as autoindex: a 2 KiB buffer) */
    static const char hex[] = "0123456789ABCDEF";
    const struct http_req *h = req->h;
    char loc[RESP_HDR_CAP];
    size_t o = 0;
    loc[o++] = '/';
    for (const char *p = req->path; *p && o + 3 + 2 < sizeof loc; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '/') {
            if (loc[o - 1] != '/') /* collapse "//": defensive, the normaliser did */
                loc[o++] = '/';
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   strchr("-._~!$&'()*+,;=:@", c)) {
            loc[o++] = (char)c;
        } else {
            loc[o++] = '%';
            loc[o++] = hex[c >> 4];
            loc[o++] = hex[c & 15];
        }
    }
    size_t qlen = h->query.p ? h->query.len + 1 : 0;
    /* the path did not fit, or the header line would not ("Location: ...\r\n") */
    if (o + 3 + 2 >= sizeof loc || o + 1 + qlen + 12 > sizeof resp->hdr) {
        resp_error(resp, 414);
        return;
    }
    loc[o++] = '/';
    resp_error(resp, 301);
    resp_header(resp, "Location", "%.*s%s%.*s", (int)o, loc, h->query.p ? "?" : "",
                h->query.p ? (int)h->query.len : 0, h->query.p ? h->query.p : "");
}

/* Open the file a path names (a directory's index.html or index.htm, a 301 to add the
 * slash, a listing, or an error into resp). Returns the fd and fills st and
 * relbuf (the file's path inside the mount), or -1 when resp is answered. */
static int open_target(const struct request *req, char *relbuf, size_t cap, struct stat *st,
                       struct response *resp)
{
    const struct mount *m = req->mount;
    int fd = confine_open(m->dir_fd, relbuf[0] ? relbuf : ".", O_RDONLY | O_NONBLOCK);
    if (fd < 0) {
        resp_error(resp, confine_status(errno));
        return -1;
    }
    if (confine_fstat(fd, st) < 0) {
        close(fd);
        resp_error(resp, 500);
        return -1;
    }
    if (S_ISDIR(st->st_mode)) {
        if (req->path[req->path_len - 1] != '/') {
            /* "/dir" -> "/dir/": relative links in the index then resolve right */
            close(fd);
            redirect_slash(req, resp);
            return -1;
        }
        size_t rl = strlen(relbuf); /* "" (the root) or "dir/" */
        snprintf(relbuf + rl, cap - rl, "index.html");
        int ifd = confine_open(m->dir_fd, relbuf, O_RDONLY | O_NONBLOCK);
        if (ifd < 0 && errno == ENOENT) { /* then index.htm */
            snprintf(relbuf + rl, cap - rl, "index.htm");
            ifd = confine_open(m->dir_fd, relbuf, O_RDONLY | O_NONBLOCK);
        }
        if (ifd < 0) {
            if (errno == ENOENT && cfg.autoindex) {
                relbuf[rl] = 0; /* the directory's own path */
                autoindex(req, fd, relbuf, resp);
            } else {
                resp_error(resp, errno == ENOENT ? 403 : confine_status(errno));
            }
            close(fd);
            return -1;
        }
        close(fd);
        fd = ifd;
        if (confine_fstat(fd, st) < 0) {
            close(fd);
            resp_error(resp, 500);
            return -1;
        }
    }
    /* no devices, FIFOs, sockets; and files with no read bit at all count as
     * unreadable even for root, so a mode-000 file is never served */
    if (!S_ISREG(st->st_mode) || !(st->st_mode & (S_IRUSR | S_IRGRP | S_IROTH))) {
        close(fd);
        resp_error(resp, 403);
        return -1;
    }
    return fd;
}

/* ---- multipart/byteranges (RFC 9110 14.6) ----
 *
 * Several ranges go out as a stream: each part's head, then its bytes
 * (from the pinned cached bytes, or pread from the response's own fd), then
 * the closing delimiter. The length is known in advance (Content-Length). */

#define RANGES_MAX 64 /* more range-specs than this: the whole file (docs/static.md) */

struct mr_ctx {
    int fd;             /* -1 when data */
    struct blob *data;  /* pinned cached bytes */
    const char *type;
    uint64_t size;
    char boundary[40];
    int n, i;           /* parts; the current one (n: the closing delimiter) */
    int in_body;        /* in part i's bytes (else its head) */
    uint64_t pos;       /* bytes of the current piece already sent */
    struct http_range r[RANGES_MAX];
};

/* Part i's head, or the closing delimiter for i == n, into buf. */
static size_t mr_head(const struct mr_ctx *c, int i, char *buf, size_t cap)
{
    int n = i == c->n ? snprintf(buf, cap, "\r\n--%s--\r\n", c->boundary)
                      : snprintf(buf, cap, "\r\n--%s\r\nContent-Type: %s\r\n"
                                           "Content-Range: bytes %llu-%llu/%llu\r\n\r\n",
                                 c->boundary, c->type, (unsigned long long)c->r[i].first,
                                 (unsigned long long)c->r[i].last, (unsigned long long)c->size);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static ssize_t mr_read(void *ctx, char *buf, size_t cap, int *wait_fd)
{
    struct mr_ctx *c = ctx;
    size_t got = 0;
    char head[512];
    while (got < cap && c->i <= c->n) {
        if (!c->in_body) {
            size_t hl = mr_head(c, c->i, head, sizeof head);
            size_t k = hl - (size_t)c->pos < cap - got ? hl - (size_t)c->pos : cap - got;
            memcpy(buf + got, head + c->pos, k);
            got += k;
            c->pos += k;
            if (c->pos == hl) {
                c->pos = 0;
                if (c->i == c->n)
                    c->i++; /* done */
                else
                    c->in_body = 1;
            }
            continue;
        }
        uint64_t left = c->r[c->i].last - c->r[c->i].first + 1 - c->pos;
        size_t k = left < cap - got ? (size_t)left : cap - got;
        off_t off = (off_t)(c->r[c->i].first + c->pos);
        if (c->data) {
            memcpy(buf + got, c->data->data + off, k);
        } else {
            ssize_t rd = pread(c->fd, buf + got, k, off);
            if (rd <= 0)
                return -1; /* the file shrank: the promised length cannot be kept */
            k = (size_t)rd;
        }
        got += k;
        c->pos += k;
        if (c->pos == c->r[c->i].last - c->r[c->i].first + 1) {
            c->pos = 0;
            c->in_body = 0;
            c->i++;
        }
    }
    return (ssize_t)got;
}

static void mr_close(void *ctx)
{
    struct mr_ctx *c = ctx;
    if (c->fd >= 0)
        close(c->fd);
    blob_unref(c->data);
    free(c);
}

/* A 206 with several parts; resp already has the representation's header
 * lines. 0, or -1 (resp answered with an error). */
static int multipart(const struct rep *r, const struct http_range *rg, int n,
                     struct response *resp)
{
    static unsigned counter;
    struct mr_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        resp_error(resp, 503);
        return -1;
    }
    c->fd = -1;
    if (r->data) {
        c->data = blob_ref(r->data);
    } else if (r->own_fd) { /* the request's own fd: the stream takes it */
        c->fd = resp->fd;
        resp->fd = -1;
    } else if ((c->fd = fcntl(r->fd, F_DUPFD_CLOEXEC, 0)) < 0) {
        free(c);
        resp_error(resp, 503);
        return -1;
    }
    c->type = r->type;
    c->size = (uint64_t)r->size;
    c->n = n;
    memcpy(c->r, rg, (size_t)n * sizeof *rg);
    /* a boundary that the parts' bytes are most unlikely to contain */
    uint64_t h = 1469598103934665603ull ^ now_ms() ^ ((uint64_t)getpid() << 32) ^ ++counter;
    for (const char *p = r->etag; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    snprintf(c->boundary, sizeof c->boundary, "forkhttpd-%016llx", (unsigned long long)h);
    int64_t len = 0;
    char head[512];
    for (int i = 0; i <= n; i++) {
        len += (int64_t)mr_head(c, i, head, sizeof head);
        if (i < n)
            len += (int64_t)(rg[i].last - rg[i].first + 1);
    }
    resp->status = 206;
    resp->content_type = NULL;
    resp_header(resp, "Content-Type", "multipart/byteranges; boundary=%s", c->boundary);
    resp->length = len;
    resp->body = BODY_STREAM;
    resp->stream.read = mr_read;
    resp->stream.close = mr_close;
    resp->stream.ctx = c;
    return 0;
}

/* ---- the handler ---- */

/* The head of an answer with r's bytes first..last (all of them, or one range). */
static void rep_answer(const struct rep *r, int status, uint64_t first, uint64_t last,
                       struct response *resp)
{
    resp->status = status;
    resp->content_type = r->type;
    resp->length = r->size ? (int64_t)(last - first + 1) : 0;
    memcpy(resp->hdr, r->hdr, r->hdr_len);
    resp->hdr_len = r->hdr_len;
}

/* The body of that answer, from byte first. */
static void rep_body(const struct rep *r, uint64_t first, struct response *resp)
{
    /* Cached bytes: the response pins them, so it may wait (a full socket,
     * a request body to read first) while the entry is evicted or refilled. */
    if (r->data) {
        resp_pinned(resp, resp->status, resp->content_type, r->data, (size_t)first,
                    (size_t)resp->length);
        return;
    }
    if (!r->own_fd) {
        resp->fd = fcntl(r->fd, F_DUPFD_CLOEXEC, 0); /* the response owns its fd */
        if (resp->fd < 0) {
            resp_error(resp, 503);
            return;
        }
    }
    resp->body = BODY_FILE;
    resp->off = (off_t)first;
}

/* A GET with a Range field: answered here (206, multipart 206, 416) and 1,
 * or 0 when the whole representation is to be sent (a stale If-Range, no
 * range that applies). Not inlined: its RANGES_MAX array would deepen the
 * stack of every file served by 1.6 KiB, a page a fork child faults in
 * (issue 19). */
static __attribute__((noinline)) int serve_range(const struct request *req, const struct rep *r,
                                                 const struct http_header *range,
                                                 struct response *resp)
{
    const struct http_header *ifr = http_req_header(req->h, "If-Range");
    if (ifr) { /* a stale validator: send the whole (new) representation */
        time_t t;
        int ok;
        if (ifr->value.len && (ifr->value.p[0] == '"' || ifr->value.p[0] == 'W'))
            ok = ifr->value.p[0] == '"' && etag_list_match(ifr->value, r->etag, 0);
        else
            ok = http_date_parse(ifr->value.p, ifr->value.len, &t) == 0 && t == r->mtime;
        if (!ok)
            return 0;
    }
    struct http_range rg[RANGES_MAX];
    int nr = http_parse_ranges(range->value.p, range->value.len, (uint64_t)r->size, rg,
                               RANGES_MAX);
    if (nr < 0) {
        resp_error(resp, 416);
        resp_header(resp, "Content-Range", "bytes */%lld", (long long)r->size);
        return 1;
    }
    if (nr == 0)
        return 0;
    if (nr > 1) {
        rep_answer(r, 206, 0, r->size ? (uint64_t)r->size - 1 : 0, resp);
        multipart(r, rg, nr, resp);
        return 1;
    }
    rep_answer(r, 206, rg[0].first, rg[0].last, resp);
    resp_header(resp, "Content-Range", "bytes %llu-%llu/%lld", (unsigned long long)rg[0].first,
                (unsigned long long)rg[0].last, (long long)r->size);
    rep_body(r, rg[0].first, resp);
    return 1;
}

/* Answer a request for the representation r: the preconditions, 304,
 * ranges, or the whole of it. */
static void serve_rep(const struct request *req, const struct rep *r, struct response *resp)
{
    const struct http_req *h = req->h;
    if (r->own_fd) /* the body comes from this one open; closed if the answer has none */
        resp->fd = r->fd;
    time_t t;
    /* RFC 9110 13.2.2: If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since, If-Range */
    const struct http_header *im = http_req_header(h, "If-Match");
    if ((im && !etag_list_match(im->value, r->etag, 0)) ||
        (!im && header_date(h, "If-Unmodified-Since", &t) && r->mtime > t)) {
        resp_error(resp, 412);
        return;
    }
    const struct http_header *inm = http_req_header(h, "If-None-Match");
    if (inm ? etag_list_match(inm->value, r->etag, 1)
            : (header_date(h, "If-Modified-Since", &t) && r->mtime <= t)) {
        resp->status = 304;
        resp->length = 0;
        memcpy(resp->hdr, r->hdr, r->hdr_len); /* ETag and Last-Modified, as a 200 would */
        resp->hdr_len = r->hdr_len;
        return;
    }

    const struct http_header *range =
        h->m == HTTP_M_GET && r->ranges ? http_req_header(h, "Range") : NULL;
    if (range && serve_range(req, r, range, resp))
        return;
    rep_answer(r, 200, 0, r->size ? (uint64_t)r->size - 1 : 0, resp);
    rep_body(r, 0, resp);
}

/* Serve e, or the coding of it the client prefers: a sidecar (file.br,
 * file.gz with --precompressed) or a variant compressed on the fly
 * (--compress). Ranges are served on a sidecar; a request with a Range
 * field never gets a variant made on the fly (no 206 of one), and a HEAD
 * never makes one (it gets it only if it is kept already). */
static void serve_ent(const struct request *req, struct fc_ent *e, struct response *resp)
{
    const struct http_req *h = req->h;
    struct rep r;
    rep_of(e, &r);
    int ranged = h->m == HTTP_M_GET && http_req_header(h, "Range");
    unsigned have = cfg.precompressed ? e->side : 0;
    if (e->zok && !ranged)
        have |= ENC_BIT(ENC_GZIP) | ENC_BIT(ENC_BR);
    if (!have) {
        serve_rep(req, &r, resp);
        return;
    }
    const struct http_header *ae = http_req_header(h, "Accept-Encoding");
    enum content_coding enc = accept_enc_choose(ae ? ae->value.p : NULL, ae ? ae->value.len : 0,
                                                have);
    if (enc != ENC_IDENTITY && (e->side & ENC_BIT(enc))) {
        char p[FC_PATH + 4];
        snprintf(p, sizeof p, "%s%s", e->rel, enc_ext[enc]);
        const char *type = e->type;
        struct fc_ent *se = fc_get(req->mount, p, enc, type);
        if (se) {
            rep_of(se, &r);
            serve_rep(req, &r, resp);
            return;
        } /* gone meanwhile: the file itself (or a variant made now) */
        if (!e->zok || ranged)
            enc = ENC_IDENTITY;
    }
    struct blob *once = NULL;
    struct fc_z *z = NULL;
    if (enc != ENC_IDENTITY && e->zok && !ranged &&
        (e->z[enc].data || h->m == HTTP_M_GET))
        z = fc_zget(e, enc, &once);
    if (z) {
        r.hdr = z->hdr;
        r.hdr_len = z->hdr_len;
        r.etag = z->etag;
        r.data = once ? once : z->data;
        r.size = (off_t)r.data->len;
        r.ranges = 0;
    }
    serve_rep(req, &r, resp);
    blob_unref(once); /* the response holds its own reference */
}

/* --fallback: a GET/HEAD for a missing file gets the fallback file (an
 * SPA's index.html), unless the last segment's extension has a known type
 * (a missing script, style sheet or image stays a 404: a browser must not
 * get HTML for it). */
static int fallback_applies(const struct request *req, const struct response *resp)
{
    return cfg.fallback && resp->status == 404 && !mime_known_ext(req->path, req->path_len);
}

static void serve_path(const struct request *req, const char *rel, int may_fallback,
                       struct response *resp);

/* serve_path with the path in relbuf (rl bytes, room for cap). */
static void serve_path_in(const struct request *req, char *relbuf, size_t cap, size_t rl,
                          int may_fallback, struct response *resp)
{
    const struct mount *m = req->mount;
    if (rl == 0 || relbuf[rl - 1] == '/') /* a directory's index, as it is cached */
        memcpy(relbuf + rl, "index.html", sizeof "index.html");

    /* A process's first file skips the cache (empty then anyway): a fork
     * child serves one connection, mostly one request, and filling a cache
     * entry would cost it more page faults than it saves (issue 19). Not
     * with sidecars or compression: those need a cached entry. */
    static int first = 1;
    int cache = !first || cfg.precompressed || cfg.compress;
    first = 0;
    struct fc_ent uncached, *e = cache ? fc_lookup(m, relbuf, ENC_IDENTITY) : NULL;
    if (!e) {
        relbuf[rl] = 0; /* back to the path as asked: it may be a directory */
        struct stat st;
        int fd = open_target(req, relbuf, cap, &st, resp);
        if (fd < 0) {
            if (may_fallback && fallback_applies(req, resp)) {
                resp->hdr_len = 0;
                serve_path(req, cfg.fallback, 0, resp);
            }
            return;
        }
        if (cache) {
            fc_insert(m, relbuf, ENC_IDENTITY, mime_lookup(relbuf, strlen(relbuf)), fd, &st);
            e = fc_lookup(m, relbuf, ENC_IDENTITY);
        }
        if (!e) { /* the first file, or not cacheable (a long path): serve from this fd */
            struct rep r;
            memset(&uncached, 0, sizeof uncached);
            uncached.fd = fd;
            uncached.type = mime_lookup(relbuf, strlen(relbuf));
            fc_fill(&uncached, &st, 0, NULL, relbuf);
            rep_of(&uncached, &r);
            r.own_fd = 1;
            serve_rep(req, &r, resp);
            return;
        }
        close(fd);
    }
    serve_ent(req, e, resp);
}

/* Serve the file (or directory) rel inside the mount. */
static void serve_path(const struct request *req, const char *rel, int may_fallback,
                       struct response *resp)
{
    /* room for the path and an index name ("index.html"); the normaliser
     * bounds the path by PATH_MAX. Short paths, most, on the stack: a
     * PATH_MAX buffer there would be a page a fork child faults in for a
     * few bytes (issue 19). */
    char small[256];
    size_t rl = strlen(rel), cap = rl + 16;
    char *relbuf = cap <= sizeof small ? small : malloc(cap);
    if (!relbuf) {
        resp_error(resp, 503);
        return;
    }
    memcpy(relbuf, rel, rl + 1);
    serve_path_in(req, relbuf, cap, rl, may_fallback, resp);
    if (relbuf != small)
        free(relbuf);
}

/* --error-page CODE=PATH: the file's bytes instead of the built-in page,
 * with the status (and header lines, e.g. Allow, Content-Range) kept. A
 * missing page leaves the built-in one. */
static void error_page(const struct request *req, struct response *resp)
{
    const struct error_page *p = NULL;
    for (int i = 0; i < cfg.nerror_pages; i++)
        if (cfg.error_pages[i].status == resp->status)
            p = &cfg.error_pages[i];
    if (!p)
        return;
    struct fc_ent *e = fc_get(req->mount, p->path, ENC_IDENTITY, NULL);
    if (!e)
        return;
    int status = resp->status;
    resp_release(resp);
    if (e->data) {
        resp_pinned(resp, status, e->type, e->data, 0, e->data->len);
        return;
    }
    resp->fd = fcntl(e->fd, F_DUPFD_CLOEXEC, 0);
    if (resp->fd < 0) {
        resp_error(resp, status);
        return;
    }
    resp->status = status;
    resp->content_type = e->type;
    resp->length = e->size;
    resp->body = BODY_FILE;
    resp->off = 0;
}

/* --header [PREFIX=]'Name: value': lines for the answers under PREFIX
 * (successes, redirects and 304s, as nginx's add_header). */
static void extra_headers(const struct request *req, struct response *resp)
{
    for (int i = 0; i < cfg.nstatic_headers; i++) {
        const struct static_header *x = &cfg.static_headers[i];
        size_t pl = x->prefix_len;
        if (pl > 1 && (req->path_len < pl || memcmp(req->path, x->prefix, pl) != 0 ||
                       (req->path_len > pl && req->path[pl] != '/')))
            continue;
        if (resp->hdr_len + x->line_len > sizeof resp->hdr)
            break; /* bounded by RESP_HDR_CAP: the rest is left out */
        memcpy(resp->hdr + resp->hdr_len, x->line, x->line_len);
        resp->hdr_len += x->line_len;
    }
}

void h_static(const struct request *req, struct response *resp)
{
    const struct http_req *h = req->h;
    if (h->m != HTTP_M_GET && h->m != HTTP_M_HEAD) {
        if (h->m == HTTP_M_OPTIONS) {
            resp->status = 204;
            resp->length = 0;
        } else {
            resp_error(resp, 405);
        }
        resp_header(resp, "Allow", "GET, HEAD, OPTIONS");
    } else {
        const struct mount *m = req->mount;
        /* the path inside the mount, without its leading '/' */
        const char *rel = req->path + (m->prefix_len == 1 ? 1 : m->prefix_len);
        while (*rel == '/')
            rel++;
        if (!cfg.allow_dotfiles && is_dotpath(rel)) {
            /* the target as sent (the parser refused control bytes in it) */
            vlog("404 for %.*s: a dotfile or dot directory (--allow-dotfiles serves them)",
                 (int)(h->path.len > 200 ? 200 : h->path.len), h->path.p);
            resp_error(resp, 404);
        } else {
            serve_path(req, rel, 1, resp);
        }
    }
    if (resp->status >= 400)
        error_page(req, resp);
    else
        extra_headers(req, resp);
}
