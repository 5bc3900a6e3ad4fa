/* log.c - warn/die, the --verbose narration, the access log. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int log_verbose_on;
int log_level = LOG_INFO;
static int log_stamp; /* stderr is the --error-log file: lines need a time */
static const char *const level_name[] = {"error", "warn", "info", "debug"};

int log_level_parse(const char *name)
{
    for (int i = LOG_ERROR; i <= LOG_DEBUG; i++)
        if (strcmp(name, level_name[i]) == 0)
            return i;
    return -1;
}

/* ---- time stamps in the zone the server started in ----
 * An app may change the process's time zone (Django sets TZ from its
 * TIME_ZONE and calls tzset()): the log's times must not follow it. So the
 * zone is read once, at start: its UTC offset now and at each change (DST)
 * over the next two years; a time stamp is UTC plus that offset. */
#define TZ_SPAN ((time_t)2 * 366 * 86400)
static struct {
    time_t from;
    long off;
} tz_tab[32];
static int tz_n;

static long off_at(time_t t)
{
    struct tm tm;
    localtime_r(&t, &tm);
    return tm.tm_gmtoff;
}

void log_tz_init(void)
{
    tzset();
    time_t t = time(NULL);
    tz_tab[0].from = 0;
    tz_tab[0].off = off_at(t);
    tz_n = 1;
    for (time_t a = t; a < t + TZ_SPAN && tz_n < (int)(sizeof tz_tab / sizeof tz_tab[0]);
         a += 86400) {
        time_t b = a + 86400;
        long off = off_at(b);
        if (off == tz_tab[tz_n - 1].off)
            continue;
        time_t lo = a, hi = b; /* off_at(lo) is the old offset, off_at(hi) the new */
        while (hi - lo > 1) {
            time_t mid = lo + (hi - lo) / 2;
            if (off_at(mid) == off)
                hi = mid;
            else
                lo = mid;
        }
        tz_tab[tz_n].from = hi;
        tz_tab[tz_n].off = off;
        tz_n++;
    }
}

/* now in the start-up zone, "2026-11-26T17:32:01+0000" or, clf, the
 * Combined Log Format's "26/Nov/2026:17:32:01 +0000". */
static size_t stamp(char *buf, size_t cap, time_t now, int clf)
{
    if (tz_n == 0)
        log_tz_init(); /* a program that never called it (unit tests) */
    long off = tz_tab[0].off;
    for (int i = 1; i < tz_n && now >= tz_tab[i].from; i++)
        off = tz_tab[i].off;
    time_t local = now + off;
    struct tm tm;
    gmtime_r(&local, &tm);
    size_t n = clf ? strftime(buf, cap, "%d/%b/%Y:%H:%M:%S ", &tm)
                   : strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    long a = off < 0 ? -off : off;
    int k = snprintf(buf + n, cap - n, "%c%02ld%02ld", off < 0 ? '-' : '+', a / 3600,
                     a % 3600 / 60);
    return k > 0 && (size_t)k < cap - n ? n + (size_t)k : n;
}

__attribute__((format(printf, 2, 0))) static void vlogline(int level, const char *fmt, va_list ap)
{
    char msg[1024];
    int saved = errno;
    int n = 0;
    if (log_stamp) {
        n = (int)stamp(msg, sizeof msg - 1, time(NULL), 0);
        msg[n++] = ' ';
    }
    n += snprintf(msg + n, sizeof msg - (size_t)n, "forkhttpd[%d]: %s: ", (int)getpid(),
                  level_name[level]);
    n += vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    if (n > (int)sizeof msg - 80)
        n = (int)sizeof msg - 80;
    if (fmt[0] && fmt[strlen(fmt) - 1] == ':')
        n += snprintf(msg + n, sizeof msg - (size_t)n, " %s", strerror(saved));
    msg[n++] = '\n';
    /* One write per line so lines of several processes do not interleave. */
    ssize_t w = write(STDERR_FILENO, msg, (size_t)n);
    (void)w;
    errno = saved;
}

#define LOG_AT(level)                                                                         \
    do {                                                                                      \
        if ((level) > log_level)                                                              \
            return;                                                                           \
        va_list ap;                                                                           \
        va_start(ap, fmt);                                                                    \
        vlogline((level), fmt, ap);                                                           \
        va_end(ap);                                                                           \
    } while (0)

/* At most one line a second per limit: under attack a limit is hit
 * thousands of times a second, and the log must not become the next
 * resource to run out. The lines held back are counted into the next one. */
void warn_limited(struct log_limit *l, const char *fmt, ...)
{
    if (LOG_WARN > log_level)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    /* l may be shared by processes (the scoreboard): atomics, one winner */
    uint64_t last = __atomic_load_n(&l->last_ms, __ATOMIC_RELAXED);
    if ((last && now - last < 1000) ||
        !__atomic_compare_exchange_n(&l->last_ms, &last, now, 0, __ATOMIC_RELAXED,
                                     __ATOMIC_RELAXED)) {
        __atomic_add_fetch(&l->held, 1, __ATOMIC_RELAXED);
        return;
    }
    uint64_t held = __atomic_exchange_n(&l->held, 0, __ATOMIC_RELAXED);
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (held)
        warn("%s (and %llu more like it not logged: one line a second)", msg,
             (unsigned long long)held);
    else
        warn("%s", msg);
}

void log_error(const char *fmt, ...) { LOG_AT(LOG_ERROR); }
void warn(const char *fmt, ...) { LOG_AT(LOG_WARN); }
void log_info(const char *fmt, ...) { LOG_AT(LOG_INFO); }

void die(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlogline(LOG_ERROR, fmt, ap);
    va_end(ap);
    exit(status);
}

void vlog(const char *fmt, ...)
{
    if (!log_verbose_on)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(msg, sizeof msg, "[%d] ", (int)getpid());
    n += vsnprintf(msg + n, sizeof msg - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof msg - 2)
        n = (int)sizeof msg - 2;
    msg[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, msg, (size_t)n);
    (void)w;
}

void vlog_head(const char *prefix, const char *head, size_t len)
{
    if (!log_verbose_on)
        return;
    char line[1200];
    const char *p = head, *end = head + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        size_t l = (size_t)(e - p);
        if (l && p[l - 1] == '\r')
            l--;
        if (l == 0 && nl)
            break; /* the blank line ending the head */
        int n = snprintf(line, sizeof line, "[%d] %s", (int)getpid(), prefix);
        for (size_t i = 0; i < l && n < (int)sizeof line - 5; i++) {
            unsigned char ch = (unsigned char)p[i];
            if (ch >= 0x20 && ch < 0x7f)
                line[n++] = (char)ch;
            else
                n += snprintf(line + n, sizeof line - (size_t)n, "\\x%02x", ch);
        }
        line[n++] = '\n';
        ssize_t w = write(STDERR_FILENO, line, (size_t)n);
        (void)w;
        if (!nl)
            break;
        p = nl + 1;
    }
}

/* ---- access log ---- */

int access_log_fd = -1;
static const char *alog_path;

int access_log_open(const char *path)
{
    alog_path = path;
    if (!path)
        return 0;
    if (strcmp(path, "-") == 0) {
        access_log_fd = dup(STDOUT_FILENO);
        if (access_log_fd >= 0)
            fcntl(access_log_fd, F_SETFD, FD_CLOEXEC);
        return access_log_fd < 0 ? -1 : 0;
    }
    /* O_APPEND: every process's one write() per line lands whole at the end. */
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "forkhttpd: --access-log: %s: %s\n", path, strerror(errno));
        return -1;
    }
    access_log_fd = fd;
    return 0;
}

static char banner[512];

void announce_set(const char *line)
{
    snprintf(banner, sizeof banner, "%s", line);
}

void announce_ready(void)
{
    fputs(banner, stdout);
    fflush(stdout);
}

static const char *elog_path;

static int error_log_dup(void)
{
    int fd = open(elog_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    dup2(fd, STDERR_FILENO); /* dup2 clears close-on-exec: children inherit it */
    close(fd);
    return 0;
}

int error_log_open(const char *path)
{
    elog_path = path;
    log_stamp = 1;
    if (error_log_dup() < 0) {
        fprintf(stderr, "forkhttpd: --error-log: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

int access_log_reopen(void)
{
    if (elog_path && error_log_dup() < 0)
        log_error("reopen error log %s:", elog_path);
    if (!alog_path || strcmp(alog_path, "-") == 0)
        return 0;
    int fd = open(alog_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        log_error("reopen access log %s:", alog_path);
        return -1;
    }
    dup2(fd, access_log_fd); /* keep the number: other code may hold it */
    fcntl(access_log_fd, F_SETFD, FD_CLOEXEC);
    close(fd);
    return 0;
}

/* Create a log file that does not exist yet (as root) and give it to
 * uid:gid, so that a server that dropped to that user can reopen it. Not
 * through a symlink nor a hard link: whoever can write the directory must
 * not get root to hand them another file (nginx's CVE-2016-1247). */
static void give_file(const char *path, uid_t uid, gid_t gid)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        log_error("%s:", path);
        return;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1 && (st.st_uid != uid || st.st_gid != gid) &&
        fchown(fd, uid, gid) < 0)
        log_error("chown %s:", path);
    close(fd);
}

void log_files_give(uid_t uid, gid_t gid)
{
    if (elog_path)
        give_file(elog_path, uid, gid);
    if (alog_path && strcmp(alog_path, "-") != 0)
        give_file(alog_path, uid, gid);
}

int log_files_need_owner(void)
{
    return elog_path || (alog_path && strcmp(alog_path, "-") != 0);
}

void access_log_close(void)
{
    if (access_log_fd >= 0)
        close(access_log_fd);
    access_log_fd = -1;
}

static int alog_tls; /* --access-log-format tls */

int access_log_format_set(const char *name)
{
    if (strcmp(name, "combined") == 0)
        alog_tls = 0;
    else if (strcmp(name, "tls") == 0)
        alog_tls = 1;
    else
        return -1;
    return 0;
}

/* Copy a field, escaping '"', '\\' and non-printables as nginx does (\xHH). */
static size_t put_escaped(char *out, size_t cap, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (size_t i = 0; i < len && n + 4 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\') {
            out[n++] = '\\';
            out[n++] = 'x';
            out[n++] = hex[ch >> 4];
            out[n++] = hex[ch & 15];
        } else {
            out[n++] = (char)ch;
        }
    }
    return n;
}

static const char *clf_time(void)
{
    static char buf[40];
    static time_t cached = -1;
    time_t now = time(NULL);
    if (now != cached) {
        stamp(buf, sizeof buf, now, 1);
        cached = now;
    }
    return buf;
}

void access_log_write(const char *peer, const char *rl, size_t rl_len, int status,
                      uint64_t bytes, const char *ref, size_t ref_len, const char *ua,
                      size_t ua_len, const char *tls_protocol, const char *tls_cipher)
{
    if (access_log_fd < 0)
        return;
    char line[4096];
    size_t n = (size_t)snprintf(line, sizeof line, "%s - - [%s] \"", peer, clf_time());
    if (rl_len)
        n += put_escaped(line + n, 2048, rl, rl_len);
    else
        line[n++] = '-'; /* no request line at all (nginx: "-") */
    n += (size_t)snprintf(line + n, sizeof line - n, "\" %d ", status);
    if (bytes)
        n += (size_t)snprintf(line + n, sizeof line - n, "%llu \"", (unsigned long long)bytes);
    else
        n += (size_t)snprintf(line + n, sizeof line - n, "- \"");
    if (ref_len)
        n += put_escaped(line + n, 700, ref, ref_len);
    else
        line[n++] = '-';
    line[n++] = '"';
    line[n++] = ' ';
    line[n++] = '"';
    if (ua_len)
        n += put_escaped(line + n, 700, ua, ua_len);
    else
        line[n++] = '-';
    line[n++] = '"';
    if (alog_tls) { /* OpenSSL's names: no spaces, short ("TLS_AES_128_GCM_SHA256") */
        line[n++] = ' ';
        n += put_escaped(line + n, 64, tls_protocol ? tls_protocol : "-",
                         tls_protocol ? strlen(tls_protocol) : 1);
        line[n++] = ' ';
        n += put_escaped(line + n, 128, tls_cipher ? tls_cipher : "-",
                         tls_cipher ? strlen(tls_cipher) : 1);
    }
    line[n++] = '\n';
    ssize_t w = write(access_log_fd, line, n);
    (void)w;
}
