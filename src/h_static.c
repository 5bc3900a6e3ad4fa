/* h_static.c - static files under a root: confinement, index, MIME types,
 * ETag/Last-Modified and the conditional requests, single byte ranges,
 * optional directory listings. Returns a file body; conn.c sends it with
 * sendfile. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "confine.h"
#include "handler.h"
#include "clock.h"
#include "http_resp.h"
#include "log.h"

/* ---- MIME types ---- */

static const struct {
    const char *ext;
    const char *type;
} mime_table[] = {
    {"html", "text/html; charset=utf-8"},    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},      {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"}, {"json", "application/json"},
    {"txt", "text/plain; charset=utf-8"},    {"md", "text/markdown; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},      {"xml", "application/xml"},
    {"svg", "image/svg+xml"},                {"png", "image/png"},
    {"jpg", "image/jpeg"},                   {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},                    {"webp", "image/webp"},
    {"avif", "image/avif"},                  {"ico", "image/vnd.microsoft.icon"},
    {"pdf", "application/pdf"},              {"wasm", "application/wasm"},
    {"mp4", "video/mp4"},                    {"webm", "video/webm"},
    {"mp3", "audio/mpeg"},                   {"ogg", "audio/ogg"},
    {"wav", "audio/wav"},                    {"woff", "font/woff"},
    {"woff2", "font/woff2"},                 {"ttf", "font/ttf"},
    {"otf", "font/otf"},                     {"zip", "application/zip"},
    {"gz", "application/gzip"},              {"tar", "application/x-tar"},
    {"map", "application/json"},             {"c", "text/plain; charset=utf-8"},
    {"h", "text/plain; charset=utf-8"},      {"py", "text/plain; charset=utf-8"},
    {"sh", "text/plain; charset=utf-8"},
};

static const char *mime_type(const char *path, size_t len)
{
    const char *dot = NULL;
    for (size_t i = len; i > 0; i--) {
        if (path[i - 1] == '/')
            break;
        if (path[i - 1] == '.') {
            dot = path + i;
            break;
        }
    }
    if (dot)
        for (size_t i = 0; i < sizeof mime_table / sizeof mime_table[0]; i++)
            if (strcasecmp(dot, mime_table[i].ext) == 0)
                return mime_table[i].type;
    return "application/octet-stream";
}

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

static void make_etag(const struct stat *st, char *buf, size_t cap)
{
    snprintf(buf, cap, "\"%llx.%lx-%llx\"", (unsigned long long)st->st_mtim.tv_sec,
             (unsigned long)st->st_mtim.tv_nsec, (unsigned long long)st->st_size);
}

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
                known = lfd >= 0 && fstat(lfd, &st) == 0;
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

static void autoindex(const struct request *req, int dfd, const char *dirrel,
                      struct response *resp)
{
    struct stat st;
    if (fstat(dfd, &st) < 0) {
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
 * second (a file replaced by a rename or deleted is dropped within a second). */

#define FC_SLOTS 128
#define FC_PATH 240
#define FC_DATA 8192 /* files up to this size are kept in memory */

struct fc_ent {
    const struct mount *m; /* NULL: empty slot */
    char rel[FC_PATH];
    int fd;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtim;
    time_t checked; /* second of the last path stat */
    uint64_t fstat_ms; /* coarse millisecond of the last fstat */
    const char *type;
    char etag[64];
    char hdr[200]; /* Last-Modified, ETag, Accept-Ranges lines */
    size_t hdr_len;
    /* The file's bytes when size <= FC_DATA. The cache holds one reference;
     * a response that sends them pins its own (resp_pinned), so dropping or
     * refilling the entry never frees bytes a waiting response still sends. */
    struct blob *data;
};

_Static_assert(FC_DATA <= FH_SMALL_BODY, "a cached body is copied next to its head (conn.c)");
_Static_assert(sizeof ((struct fc_ent *)0)->hdr <= RESP_HDR_CAP, "an entry's header lines fit a response");

static struct fc_ent fcache[FC_SLOTS];

static unsigned fc_hash(const struct mount *m, const char *rel)
{
    unsigned h = 2166136261u ^ (unsigned)(uintptr_t)m;
    for (; *rel; rel++)
        h = (h ^ (unsigned char)*rel) * 16777619u;
    return h % FC_SLOTS;
}

static void fc_drop(struct fc_ent *e)
{
    if (!e->m)
        return;
    close(e->fd);
    blob_unref(e->data);
    e->data = NULL;
    e->m = NULL;
}

/* (Re)compute what depends on the file's state; keep the bytes of a small
 * file when with_data. 0, or -1 (entry dropped). */
static int fc_fill(struct fc_ent *e, const struct stat *st, int with_data)
{
    e->dev = st->st_dev;
    e->ino = st->st_ino;
    e->size = st->st_size;
    e->mtim = st->st_mtim;
    make_etag(st, e->etag, sizeof e->etag);
    char lastmod[32];
    http_date_fmt(st->st_mtime, lastmod);
    int n = snprintf(e->hdr, sizeof e->hdr,
                     "Last-Modified: %s\r\nETag: %s\r\nAccept-Ranges: bytes\r\n", lastmod,
                     e->etag);
    e->hdr_len = n > 0 && (size_t)n < sizeof e->hdr ? (size_t)n : 0;
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

static void fc_insert(const struct mount *m, const char *rel, int fd, const struct stat *st)
{
    if (strlen(rel) >= FC_PATH)
        return;
    int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0)
        return;
    struct fc_ent *e = &fcache[fc_hash(m, rel)];
    fc_drop(e);
    e->m = m;
    snprintf(e->rel, sizeof e->rel, "%s", rel);
    e->fd = dup_fd;
    e->checked = time(NULL);
    e->fstat_ms = 0;
    e->type = mime_type(rel, strlen(rel));
    fc_fill(e, st, 1);
}

/* A valid cache entry for (m, rel), or NULL. */
static struct fc_ent *fc_lookup(const struct mount *m, const char *rel)
{
    struct fc_ent *e = &fcache[fc_hash(m, rel)];
    if (e->m != m || strcmp(e->rel, rel) != 0)
        return NULL;
    struct stat st;
    time_t now = time(NULL);
    if (now != e->checked) { /* has the path been replaced or removed? */
        if (fstatat(m->dir_fd, rel, &st, 0) < 0 || st.st_ino != e->ino || st.st_dev != e->dev) {
            fc_drop(e);
            return NULL;
        }
        e->checked = now;
    }
    /* an fstat per clock tick, not per request: pipelined requests for the
     * same file (one read, one write) share one */
    uint64_t ms = now_ms();
    if (ms == e->fstat_ms)
        return e;
    e->fstat_ms = ms;
    if (fstat(e->fd, &st) < 0 || !(st.st_mode & (S_IRUSR | S_IRGRP | S_IROTH))) {
        fc_drop(e);
        return NULL;
    }
    if (st.st_size != e->size || st.st_mtim.tv_sec != e->mtim.tv_sec ||
        st.st_mtim.tv_nsec != e->mtim.tv_nsec) {
        if (fc_fill(e, &st, 1) < 0)
            return NULL;
    }
    return e;
}

void h_static_cache_free(void)
{
    for (int i = 0; i < LC_SLOTS; i++)
        lc_drop(&lcache[i]);
    for (int i = 0; i < FC_SLOTS; i++)
        fc_drop(&fcache[i]);
}

/* ---- the handler ---- */

/* The 301 that adds a directory's trailing slash. Location is built from the
 * normalised path, never from the raw target: "//evil.example/..//dir" is
 * the directory /dir, and echoing the raw path would send a browser to
 * another host ("//host/..." is a scheme-relative URL; browsers read "/\host"
 * the same way). It starts with exactly one '/' and is percent-encoded (all
 * but unreserved characters, '/' and the sub-delims, ':' and '@'), so '\',
 * '%', '?', '#', spaces, control bytes and non-ASCII in a name come back as
 * the same name. The query is kept as it came. Too long for a header: 414. */
static void redirect_slash(const struct request *req, struct response *resp)
{
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

/* Open the file a path names (a directory's index.html, a 301 to add the
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
    if (fstat(fd, st) < 0) {
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
        if (fstat(fd, st) < 0) {
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
        return;
    }

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
        return;
    }
    /* the normaliser bounds the path by PATH_MAX; room is left for the index name */
    char relbuf[PATH_MAX + 16];
    size_t rl = strlen(rel);
    memcpy(relbuf, rel, rl + 1);
    if (rl == 0 || relbuf[rl - 1] == '/') /* a directory's index, as it is cached */
        memcpy(relbuf + rl, "index.html", sizeof "index.html");

    struct fc_ent uncached, *e = fc_lookup(m, relbuf);
    if (!e) {
        relbuf[rl] = 0; /* back to the path as asked: it may be a directory */
        struct stat st;
        int fd = open_target(req, relbuf, sizeof relbuf, &st, resp);
        if (fd < 0)
            return;
        fc_insert(m, relbuf, fd, &st);
        e = fc_lookup(m, relbuf);
        if (!e) { /* not cacheable (a long path): serve from this fd */
            e = &uncached;
            e->fd = fd;
            e->data = NULL;
            e->type = mime_type(relbuf, strlen(relbuf));
            fc_fill(e, &st, 0);
        } else {
            close(fd);
        }
    }

    if (e == &uncached) {
        /* the validators and the body come from this one open; the fd goes
         * to the response (or is closed if the answer has no body) */
        resp->fd = e->fd;
    }
    time_t t;
    time_t mtime = e->mtim.tv_sec;
    /* RFC 9110 13.2.2: If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since, If-Range */
    const struct http_header *im = http_req_header(h, "If-Match");
    if ((im && !etag_list_match(im->value, e->etag, 0)) ||
        (!im && header_date(h, "If-Unmodified-Since", &t) && mtime > t)) {
        resp_error(resp, 412);
        return;
    }
    const struct http_header *inm = http_req_header(h, "If-None-Match");
    if (inm ? etag_list_match(inm->value, e->etag, 1)
            : (header_date(h, "If-Modified-Since", &t) && mtime <= t)) {
        resp->status = 304;
        resp->length = 0;
        memcpy(resp->hdr, e->hdr, e->hdr_len); /* ETag and Last-Modified, as a 200 would */
        resp->hdr_len = e->hdr_len;
        return;
    }

    uint64_t first = 0, last = e->size ? (uint64_t)e->size - 1 : 0;
    int ranged = 0;
    const struct http_header *range = h->m == HTTP_M_GET ? http_req_header(h, "Range") : NULL;
    if (range) {
        const struct http_header *ifr = http_req_header(h, "If-Range");
        int ok = 1;
        if (ifr) { /* a stale validator: send the whole (new) representation */
            if (ifr->value.len && (ifr->value.p[0] == '"' || ifr->value.p[0] == 'W'))
                ok = ifr->value.p[0] == '"' && etag_list_match(ifr->value, e->etag, 0);
            else
                ok = http_date_parse(ifr->value.p, ifr->value.len, &t) == 0 && t == mtime;
        }
        int r = ok ? http_parse_range(range->value.p, range->value.len, (uint64_t)e->size,
                                      &first, &last)
                   : 0;
        if (r < 0) {
            resp_error(resp, 416);
            resp_header(resp, "Content-Range", "bytes */%lld", (long long)e->size);
            return;
        }
        ranged = r == 1;
    }

    resp->status = ranged ? 206 : 200;
    resp->content_type = e->type;
    resp->length = e->size ? (int64_t)(last - first + 1) : 0;
    memcpy(resp->hdr, e->hdr, e->hdr_len);
    resp->hdr_len = e->hdr_len;
    if (ranged)
        resp_header(resp, "Content-Range", "bytes %llu-%llu/%lld", (unsigned long long)first,
                    (unsigned long long)last, (long long)e->size);
    /* Cached bytes: the response pins them, so it may wait (a full socket,
     * a request body to read first) while the entry is evicted or refilled. */
    if (e->data) {
        resp_pinned(resp, resp->status, resp->content_type, e->data, (size_t)first,
                    (size_t)resp->length);
        return;
    }
    if (e != &uncached) {
        resp->fd = fcntl(e->fd, F_DUPFD_CLOEXEC, 0); /* the response owns its fd */
        if (resp->fd < 0) {
            resp_error(resp, 503);
            return;
        }
    }
    resp->body = BODY_FILE;
    resp->off = (off_t)first;
}
