/* log.h - diagnostics to stderr, the --verbose narration, the access log. */
#ifndef FH_LOG_H
#define FH_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* Levels (--log-level): a line above log_level is not written.
 *   error  the server cannot do its job: a worker died, fork/epoll failed
 *   warn   one exchange went wrong: timeouts, a script's bad output (502)
 *   info   lifecycle: stopping, restarting, notes on the configuration
 *   debug  --verbose: the tutorial's narration of accept/fork/reap */
enum { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };
extern int log_level;
/* "error", "warn", "info" or "debug" -> LOG_*, else -1 */
int log_level_parse(const char *name);

/* One line on stderr: "forkhttpd[PID]: LEVEL: message", after a local time
 * stamp when stderr is the --error-log file. A trailing ':' in fmt appends
 * ": strerror(errno)": words, never a bare errno number. */
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A warn line for a limit that sheds load (docs/hardening.md): at most one
 * a second per struct log_limit (zero-initialised, one per limit; it may
 * live in memory shared by processes: atomic updates); the next line counts
 * those held back. No trailing ':' (errno). */
struct log_limit {
    uint64_t last_ms; /* CLOCK_MONOTONIC of the last line written, 0: none yet */
    uint64_t held;    /* lines not written since */
};
void warn_limited(struct log_limit *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print at level error, whatever --log-level says, and exit with status. */
void die(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
/* --verbose (--log-level debug) only: the narration, "[pid] ..." on stderr. */
extern int log_verbose_on;
void vlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* --verbose only: each line of a head, prefixed (e.g. "< " or "> "). */
void vlog_head(const char *prefix, const char *head, size_t len);

/* The "Serving HTTP on ..." line: main.c composes it, and whoever knows the
 * server is ready prints it (main, or the event master once every worker
 * listens): tests and scripts read it as the readiness signal. */
void announce_set(const char *line);
void announce_ready(void);

/* --error-log: stderr itself goes to FILE (so do CGI scripts' and apps'
 * stderr). 0, or -1 with a message. access_log_reopen() reopens it too. */
int error_log_open(const char *path);

/* Access log in Combined Log Format; path "-" is stdout. 0 or -1 (message printed). */
int access_log_open(const char *path);
int access_log_reopen(void);
/* --user: make sure the --error-log/--access-log files exist and belong to
 * uid:gid (created as root if need be), so that the server, once it runs as
 * that user, can reopen them on SIGUSR1. Called at start and, on SIGUSR1, by
 * the root parent that main.c keeps for it. */
#include <sys/types.h>
void log_files_give(uid_t uid, gid_t gid);
int log_files_need_owner(void); /* is there a log file (not stdout/stderr)? */
void access_log_close(void);    /* this process's copy (the root parent's) */
/* Read the time zone once, at start: log time stamps stay in that zone
 * whatever an app later does to TZ (Django sets it). */
void log_tz_init(void);
extern int access_log_fd; /* >= 0 while an access log is open */
/* (inline: a call per request into log.c would be one more code page in
 * each fork child, issue 19) */
static inline int access_log_enabled(void)
{
    return access_log_fd >= 0;
}
/* --access-log-format: "combined" (the default) or "tls" (combined, then the
 * connection's TLS protocol and cipher, "-" for plain HTTP; docs/tls.md).
 * 0, or -1 for another name. */
int access_log_format_set(const char *name);
/* tls_protocol, tls_cipher: the connection's (OpenSSL's names), or NULL on
 * plain HTTP; written only by the "tls" format. */
void access_log_write(const char *peer, const char *request_line, size_t rl_len, int status,
                      uint64_t bytes, const char *referer, size_t ref_len, const char *ua,
                      size_t ua_len, const char *tls_protocol, const char *tls_cipher);

#endif
