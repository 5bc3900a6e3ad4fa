/* h_static.c - static files under a root: confinement, index, MIME types,
 * ETag/Last-Modified and the conditional requests, single byte ranges,
 * optional directory listings. Returns a file body; conn.c sends it with
 * sendfile. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "handler.h"
#include "http_resp.h"

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

/* ---- confinement ---- */

/* Open rel (no leading '/') beneath the root directory fd. The kernel refuses
 * any resolution that leaves the root, '..' or a symlink pointing outside
 * included (RESOLVE_BENEATH). It also refuses absolute symlinks, even those
 * that point back inside the root: for those (EXDEV) we open normally and
 * check where the file really is. */
static int open_beneath(int dirfd, const char *rel)
{
    struct open_how how;
    memset(&how, 0, sizeof how);
    /* O_NONBLOCK: opening a FIFO must not block the worker */
    how.flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    int fd = (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof how);
    if (fd >= 0 || (errno != ENOSYS && errno != EXDEV))
        return fd;
    /* Kernels before 5.6, or an absolute symlink: open, then check where it is. */
    fd = openat(dirfd, rel, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -1;
    char proc[64], real[PATH_MAX], root[PATH_MAX];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", dirfd);
    ssize_t rl = readlink(proc, root, sizeof root - 1);
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    ssize_t fl = readlink(proc, real, sizeof real - 1);
    if (rl <= 0 || fl <= 0 || fl < rl || memcmp(root, real, (size_t)rl) != 0 ||
        (fl > rl && real[rl] != '/' && !(rl == 1 && root[0] == '/'))) {
        close(fd);
        errno = EXDEV;
        return -1;
    }
    return fd;
}

static int errno_status(int e)
{
    switch (e) {
    case EACCES:
    case EPERM: return 403;
    case ENAMETOOLONG: return 414;
    case EMFILE:
    case ENFILE:
    case ENOMEM: return 503;
    default: return 404; /* ENOENT, ENOTDIR, EXDEV/ELOOP (outside the root): not found */
    }
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

static void autoindex(const struct request *req, int dfd, struct response *resp)
{
    int fd2 = dup(dfd);
    DIR *d = fd2 >= 0 ? fdopendir(fd2) : NULL;
    if (!d) {
        if (fd2 >= 0)
            close(fd2);
        resp_error(resp, 500);
        return;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < LIST_MAX) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
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
            if (fstatat(dirfd(d), names[i], &st, 0) < 0)
                continue; /* dangling link or raced away */
            int isdir = S_ISDIR(st.st_mode);
            char date[32];
            http_date_fmt(st.st_mtime, date);
            fputs("<a href=\"", f);
            put_url(f, names[i]);
            fputs(isdir ? "/\">" : "\">", f);
            put_html(f, names[i]);
            fprintf(f, "%s</a>  %s  ", isdir ? "/" : "", date);
            if (isdir)
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
    if (!buf) {
        resp_error(resp, 500);
        return;
    }
    resp_mem(resp, 200, "text/html; charset=utf-8", buf, len);
    resp->mem_free = buf;
}

/* ---- the handler ---- */

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
    char relbuf[PATH_MAX + 16];
    snprintf(relbuf, sizeof relbuf, "%s", *rel ? rel : ".");

    int fd = open_beneath(m->dir_fd, relbuf);
    if (fd < 0) {
        resp_error(resp, errno_status(errno));
        return;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        close(fd);
        resp_error(resp, 500);
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        if (req->path[req->path_len - 1] != '/') {
            /* "/dir" -> "/dir/": relative links in the index then resolve right */
            close(fd);
            resp_error(resp, 301);
            resp_header(resp, "Location", "%.*s/%s%.*s", (int)h->path.len, h->path.p,
                        h->query.p ? "?" : "", h->query.p ? (int)h->query.len : 0,
                        h->query.p ? h->query.p : "");
            return;
        }
        /* the path ends in '/', so rel is "" (the root: ".") or "dir/" */
        if (strcmp(relbuf, ".") == 0)
            relbuf[0] = 0;
        size_t rl = strlen(relbuf);
        snprintf(relbuf + rl, sizeof relbuf - rl, "index.html");
        int ifd = open_beneath(m->dir_fd, relbuf);
        if (ifd < 0) {
            if (errno == ENOENT && cfg.autoindex)
                autoindex(req, fd, resp);
            else
                resp_error(resp, errno == ENOENT ? 403 : errno_status(errno));
            close(fd);
            return;
        }
        close(fd);
        fd = ifd;
        if (fstat(fd, &st) < 0) {
            close(fd);
            resp_error(resp, 500);
            return;
        }
    }
    /* no devices, FIFOs, sockets; and files with no read bit at all count as
     * unreadable even for root, so a mode-000 file is never served */
    if (!S_ISREG(st.st_mode) || !(st.st_mode & (S_IRUSR | S_IRGRP | S_IROTH))) {
        close(fd);
        resp_error(resp, 403);
        return;
    }

    char etag[64], lastmod[32];
    make_etag(&st, etag, sizeof etag);
    http_date_fmt(st.st_mtime, lastmod);
    time_t t;

    /* RFC 9110 13.2.2: If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since, If-Range */
    const struct http_header *im = http_req_header(h, "If-Match");
    if ((im && !etag_list_match(im->value, etag, 0)) ||
        (!im && header_date(h, "If-Unmodified-Since", &t) && st.st_mtime > t)) {
        close(fd);
        resp_error(resp, 412);
        return;
    }
    const struct http_header *inm = http_req_header(h, "If-None-Match");
    if (inm ? etag_list_match(inm->value, etag, 1)
            : (header_date(h, "If-Modified-Since", &t) && st.st_mtime <= t)) {
        close(fd);
        resp->status = 304;
        resp->length = 0;
        resp_header(resp, "ETag", "%s", etag);
        resp_header(resp, "Last-Modified", "%s", lastmod);
        return;
    }

    resp->status = 200;
    resp->content_type = mime_type(relbuf, strlen(relbuf));
    resp->body = BODY_FILE;
    resp->fd = fd;
    resp->off = 0;
    resp->length = st.st_size;
    resp_header(resp, "Last-Modified", "%s", lastmod);
    resp_header(resp, "ETag", "%s", etag);
    resp_header(resp, "Accept-Ranges", "bytes");

    const struct http_header *range = http_req_header(h, "Range");
    if (!range || h->m != HTTP_M_GET)
        return;
    const struct http_header *ifr = http_req_header(h, "If-Range");
    if (ifr) { /* a stale validator: send the whole (new) representation */
        int ok;
        if (ifr->value.len && (ifr->value.p[0] == '"' || ifr->value.p[0] == 'W'))
            ok = etag_list_match(ifr->value, etag, 0) && ifr->value.p[0] == '"';
        else
            ok = http_date_parse(ifr->value.p, ifr->value.len, &t) == 0 && t == st.st_mtime;
        if (!ok)
            return;
    }
    uint64_t first, last;
    int r = http_parse_range(range->value.p, range->value.len, (uint64_t)st.st_size, &first,
                             &last);
    if (r == 1) {
        resp->status = 206;
        resp->off = (off_t)first;
        resp->length = (int64_t)(last - first + 1);
        resp_header(resp, "Content-Range", "bytes %llu-%llu/%lld", (unsigned long long)first,
                    (unsigned long long)last, (long long)st.st_size);
    } else if (r < 0) {
        resp_release(resp);
        resp_error(resp, 416);
        resp_header(resp, "Content-Range", "bytes */%lld", (long long)st.st_size);
    }
}
