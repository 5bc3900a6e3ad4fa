/* h_status.c - `--status PREFIX`: what the server is doing, from the
 * scoreboard every process writes to: the master and worker PIDs, per worker
 * connections accepted and open, requests, CGI scripts running, open fds;
 * event workers' longest loop iteration (a stall: loop_max_us since the
 * worker started, loop_recent_us over the last 10 to 20 s; the blocking
 * models have no loop and show neither); the listen queue; children reaped;
 * uptime; the mount table. Plain text, or JSON with
 * `?json`. Only loopback clients may look, unless --status-public; a loopback
 * request that came through a proxy (it carries Forwarded, Via, X-Real-IP or
 * an X-Forwarded-* field) is refused too.
 *
 * The page is exactly PREFIX, spelled exactly so in the request: "/%73tatus",
 * "//status", "/x/../status", "/status/" and "/status/x" are 404. The router
 * matched the normalised path, which a proxy in front may not do: a proxy
 * rule that guards the raw spelling "/status" must not be bypassable by
 * another spelling of the same resource (docs/hardening.md). */
#include <dirent.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "handler.h"
#include "scoreboard.h"

static int is_loopback(const union net_addr *a)
{
    if (a->sa.sa_family == AF_INET)
        return (ntohl(a->in4.sin_addr.s_addr) >> 24) == 127;
    if (a->sa.sa_family == AF_INET6) {
        const struct in6_addr *ip = &a->in6.sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(ip))
            return 1;
        return IN6_IS_ADDR_V4MAPPED(ip) && ip->s6_addr[12] == 127;
    }
    return 0;
}

static int count_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own fd */
}

/* s as a JSON string: a mount's directory may hold any byte. */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

/* The app pool's counters of a slot (app_pool.c's threads write them). */
struct app_counts {
    unsigned threads, busy, queued, stuck;
    unsigned long long rejected, timeouts;
};

static struct app_counts app_counts_of(const struct sb_slot *s)
{
    return (struct app_counts){
        .threads = __atomic_load_n(&s->app_threads, __ATOMIC_RELAXED),
        .busy = __atomic_load_n(&s->app_busy, __ATOMIC_RELAXED),
        .queued = __atomic_load_n(&s->app_queued, __ATOMIC_RELAXED),
        .stuck = __atomic_load_n(&s->app_stuck, __ATOMIC_RELAXED),
        .rejected = (unsigned long long)__atomic_load_n(&s->app_rejected, __ATOMIC_RELAXED),
        .timeouts = (unsigned long long)__atomic_load_n(&s->app_timeouts, __ATOMIC_RELAXED),
    };
}

static const char *state_name(int st)
{
    switch (st) {
    case SB_STARTING: return "starting";
    case SB_IDLE: return "idle";
    case SB_BUSY: return "busy";
    case SB_STOPPING: return "stopping";
    default: return "free";
    }
}

/* Did the request come through a proxy? The header fields proxies add. A
 * proxy that adds none of them is not seen: this is a second line of defence
 * behind the proxy's own access rule, not a replacement for it. */
static int via_proxy(const struct http_req *h)
{
    for (size_t i = 0; i < h->nheaders; i++) {
        struct http_str n = h->headers[i].name;
        if (http_str_ieq(n, "Forwarded") || http_str_ieq(n, "Via") || http_str_ieq(n, "X-Real-IP"))
            return 1;
        if (n.len > 12 && http_str_ieq((struct http_str){n.p, 12}, "X-Forwarded-"))
            return 1;
    }
    return 0;
}

void h_status(const struct request *req, struct response *resp)
{
    const struct http_req *h = req->h;
    const struct mount *m = req->mount;
    /* only the canonical spelling: the raw path is the prefix, byte for byte */
    if (h->path.len != m->prefix_len || memcmp(h->path.p, m->prefix, m->prefix_len) != 0) {
        resp_error(resp, 404);
        return;
    }
    if (!cfg.status_public && (!is_loopback(req->peer) || via_proxy(h))) {
        resp_error(resp, 403);
        return;
    }
    if (h->m != HTTP_M_GET && h->m != HTTP_M_HEAD) {
        resp_error(resp, 405);
        resp_header(resp, "Allow", "GET, HEAD");
        return;
    }
    if (!sb) {
        resp_error(resp, 503);
        return;
    }
    int json = h->query.p && h->query.len >= 4 && memcmp(h->query.p, "json", 4) == 0;

    /* the accept queue of the listening socket: now / the backlog */
    char qnow[24] = "null", qmax[24];
    snprintf(qmax, sizeof qmax, "%d", cfg.backlog);
    unsigned qn, qm;
    if (net_listen_queue(net_listen_fd, &qn, &qm) == 0) {
        snprintf(qnow, sizeof qnow, "%u", qn);
        snprintf(qmax, sizeof qmax, "%u", qm);
    } else if (net_queue_seen_now >= 0) {
        /* a fork model's child closed the listening socket: the queue as it
         * was when this connection was accepted */
        snprintf(qnow, sizeof qnow, "%ld", net_queue_seen_now);
        snprintf(qmax, sizeof qmax, "%ld", net_queue_seen_max);
    }
    long uptime = (long)(time(NULL) - sb->started);
    int loop = strcmp(cfg.model, "event") == 0; /* the loop-time columns */

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        resp_error(resp, 500);
        return;
    }
    if (json)
        fprintf(f,
                "{\"server\":\"" FH_SERVER "\",\"model\":\"%s\",\"uptime_sec\":%ld,"
                "\"master_pid\":%d,\"master_fds\":%d,\"listen_queue\":{\"now\":%s,\"max\":%s},"
                "\"children_reaped\":%llu,\"workers\":[",
                cfg.model, uptime, (int)sb->master, count_fds(sb->master), qnow, qmax,
                (unsigned long long)sb->reaped);
    else
        fprintf(f,
                FH_SERVER ", model %s, up %ld s\n"
                "master pid %d (%d fds), listen queue %s of %s, children reaped %llu\n\n"
                "slot    pid  state     accepted  open  requests  cgi  fds%s%s%s\n",
                cfg.model, uptime, (int)sb->master, count_fds(sb->master), qnow, qmax,
                (unsigned long long)sb->reaped, loop ? "  loop_ms  loop_max_ms" : "",
                cfg.ntls_cert ? "  tls_handshakes  tls_resumed  tls_failed" : "",
                cfg.threads ? "  threads  busy  queued  stuck  app_503  app_504" : "");
    int first = 1;
    for (int i = 0; i < sb->nslots && i < SB_MAX_SLOTS; i++) {
        const struct sb_slot *s = &sb->slot[i];
        if (s->state == SB_FREE || s->pid <= 0)
            continue;
        int fds = count_fds(s->pid);
        const struct app_counts a = app_counts_of(s);
        if (json) {
            fprintf(f,
                    "%s{\"slot\":%d,\"pid\":%d,\"state\":\"%s\",\"accepted\":%llu,"
                    "\"active\":%llu,\"requests\":%llu,\"cgi\":%llu,\"fds\":%d",
                    first ? "" : ",", i, (int)s->pid, state_name(s->state),
                    (unsigned long long)s->accepted, (unsigned long long)s->active,
                    (unsigned long long)s->requests, (unsigned long long)s->cgi, fds);
            if (loop)
                fprintf(f, ",\"loop_recent_us\":%u,\"loop_max_us\":%u", (unsigned)s->loop_recent_us,
                        (unsigned)s->loop_max_us);
            if (cfg.ntls_cert) /* HTTPS (tls.c) */
                fprintf(f, ",\"tls_handshakes\":%llu,\"tls_resumed\":%llu,\"tls_failed\":%llu",
                        (unsigned long long)s->tls_handshakes, (unsigned long long)s->tls_resumed,
                        (unsigned long long)s->tls_failed);
            if (cfg.threads)
                fprintf(f,
                        ",\"app_threads\":%u,\"app_busy\":%u,\"app_queued\":%u,"
                        "\"app_stuck\":%u,\"app_rejected\":%llu,\"app_timeouts\":%llu",
                        a.threads, a.busy, a.queued, a.stuck, a.rejected, a.timeouts);
            /* the limits that shed load (docs/hardening.md) */
            for (int k = 0; k < SB_NSHED; k++)
                fprintf(f, ",\"%s\":%llu", sb_shed_name[k],
                        (unsigned long long)__atomic_load_n(&s->shed[k], __ATOMIC_RELAXED));
            fprintf(f, ",\"full\":%s", s->full ? "true" : "false");
            fputc('}', f);
        } else {
            fprintf(f, "%4d %6d  %-8s %9llu %5llu %9llu %4llu %4d", i, (int)s->pid,
                    state_name(s->state), (unsigned long long)s->accepted,
                    (unsigned long long)s->active, (unsigned long long)s->requests,
                    (unsigned long long)s->cgi, fds);
            if (loop)
                fprintf(f, " %8.1f %12.1f", s->loop_recent_us / 1000.0, s->loop_max_us / 1000.0);
            if (cfg.ntls_cert)
                fprintf(f, " %15llu %12llu %11llu", (unsigned long long)s->tls_handshakes,
                        (unsigned long long)s->tls_resumed, (unsigned long long)s->tls_failed);
            if (cfg.threads)
                fprintf(f, " %8u %5u %7u %6u %8llu %8llu", a.threads, a.busy, a.queued, a.stuck,
                        a.rejected, a.timeouts);
            fputc('\n', f);
        }
        first = 0;
    }
    if (!json) { /* the limits that shed load, per worker (docs/hardening.md) */
        fputs("\nslot", f);
        for (int k = 0; k < SB_NSHED; k++)
            fprintf(f, "  %s", sb_shed_name[k]);
        fputs("  full\n", f);
        for (int i = 0; i < sb->nslots && i < SB_MAX_SLOTS; i++) {
            const struct sb_slot *s = &sb->slot[i];
            if (s->state == SB_FREE || s->pid <= 0)
                continue;
            fprintf(f, "%4d", i);
            for (int k = 0; k < SB_NSHED; k++)
                fprintf(f, "  %*llu", (int)strlen(sb_shed_name[k]),
                        (unsigned long long)__atomic_load_n(&s->shed[k], __ATOMIC_RELAXED));
            fputs(s->full ? "  yes\n" : "  no\n", f);
        }
    }
    /* the mount table, as the router sees it (longest prefix wins) */
    fputs(json ? "],\"mounts\":[" : "\nprefix           kind    serves\n", f);
    for (int i = 0; i < cfg.nmounts; i++) {
        const struct mount *mt = &cfg.mounts[i];
        char what[PATH_MAX + 64];
        mt->ops->describe(mt, what, sizeof what);
        if (json) {
            fputs(i ? ",{\"prefix\":" : "{\"prefix\":", f);
            json_str(f, mt->prefix);
            fprintf(f, ",\"kind\":\"%s\",\"serves\":", mt->ops->name);
            json_str(f, what);
            fputc('}', f);
        } else {
            fprintf(f, "%-16s %-7s %s\n", mt->prefix, mt->ops->name, what);
        }
    }
    if (json)
        fputs("]}\n", f);
    fclose(f);
    resp_mem(resp, 200, json ? "application/json" : "text/plain; charset=utf-8", buf, len);
    resp->mem_free = buf;
    resp_header(resp, "Cache-Control", "no-store");
}
