/* main.c - argv -> config, bind the listener, pick the model, run it. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "compress.h"
#include "config.h"
#include "conn.h"
#include "handler.h"
#include "log.h"
#include "model.h"
#include "net.h"
#include "sig.h"
#include "supervise.h"
#include "tls.h"

static const struct model models[] = {
    {"iterative", model_iterative, 0},
    {"fork", model_fork, 0},
    {"prefork", model_prefork, 1},
    {"event", model_event, 1},
};

const struct model *model_find(const char *name)
{
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
        if (strcmp(models[i].name, name) == 0)
            return &models[i];
    return NULL;
}

const char *model_names(void)
{
    static char buf[128];
    size_t n = 0;
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", i ? "|" : "", models[i].name);
    return buf;
}

/* --pid-file: the master's PID, for service managers and scripts. */
static int write_pid_file(void)
{
    if (!cfg.pid_file)
        return 0;
    FILE *f = fopen(cfg.pid_file, "we");
    if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0) {
        fprintf(stderr, "forkhttpd: --pid-file %s: %s\n", cfg.pid_file, strerror(errno));
        return -1;
    }
    return 0;
}

/* Bind as root (ports below 1024), then serve as --user: a compromised
 * worker then holds no privilege. */
static int drop_privileges(void)
{
    if (geteuid() != 0) {
        if (cfg.user || cfg.group) {
            struct passwd *pw = cfg.user ? getpwnam(cfg.user) : NULL;
            if (!cfg.user || !pw || pw->pw_uid != geteuid()) {
                fprintf(stderr, "forkhttpd: --user/--group need the server to start as root\n");
                return -1;
            }
        }
        return 0;
    }
    if (!cfg.user) {
        if (cfg.group) {
            fprintf(stderr, "forkhttpd: --group needs --user\n");
            return -1;
        }
        return 0; /* main() warns once the server really starts */
    }
    struct passwd *pw = getpwnam(cfg.user);
    if (!pw) {
        fprintf(stderr, "forkhttpd: --user %s: no such user\n", cfg.user);
        return -1;
    }
    gid_t gid = pw->pw_gid;
    if (cfg.group) {
        struct group *gr = getgrnam(cfg.group);
        if (!gr) {
            fprintf(stderr, "forkhttpd: --group %s: no such group\n", cfg.group);
            return -1;
        }
        gid = gr->gr_gid;
    }
    if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(pw->pw_uid) < 0) {
        fprintf(stderr, "forkhttpd: --user %s: %s\n", cfg.user, strerror(errno));
        return -1;
    }
    if (setuid(0) == 0) { /* must be impossible now */
        fprintf(stderr, "forkhttpd: --user %s: could not drop root\n", cfg.user);
        return -1;
    }
    return 0;
}

/* Started as root with --user: the ids the server will run as (0, or -1
 * with a message); *uid is -1 when it will not change user. */
static int target_ids(uid_t *uid, gid_t *gid)
{
    *uid = (uid_t)-1;
    *gid = (gid_t)-1;
    if (geteuid() != 0 || !cfg.user)
        return 0;
    struct passwd *pw = getpwnam(cfg.user);
    if (!pw) {
        fprintf(stderr, "forkhttpd: --user %s: no such user\n", cfg.user);
        return -1;
    }
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    if (cfg.group) {
        struct group *gr = getgrnam(cfg.group);
        if (!gr) {
            fprintf(stderr, "forkhttpd: --group %s: no such group\n", cfg.group);
            return -1;
        }
        *gid = gr->gr_gid;
    }
    return 0;
}

/* The root parent. Started as root with --user and files in directories
 * only root may write (--pid-file, --unix, the logs), the server runs as a
 * child that drops to --user, and the process started stays root to do, as
 * nginx's master does, what needs root: on SIGUSR1 it creates the rotated
 * log files and gives them to the user before passing the signal on (the
 * server then reopens them by name); at exit it removes the pid file and the
 * socket. It forwards TERM, INT, HUP, USR1 and exits with the server's
 * status. It runs no request code and holds no socket. Returns only in the
 * child (0), or -1 if fork fails. */
static int keep_root_parent(int lfd, uid_t uid, gid_t gid)
{
    static const int fwd[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1};
    sigset_t set, old;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof fwd / sizeof fwd[0]; i++)
        sigaddset(&set, fwd[i]);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, &old);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "forkhttpd: fork: %s\n", strerror(errno));
        sigprocmask(SIG_SETMASK, &old, NULL);
        return -1;
    }
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        return 0;
    }
    close(lfd);
    net_close_extra();
    tls_free();
    access_log_close();
    int rc = 1;
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&set, &si);
        if (sig < 0)
            continue; /* EINTR */
        if (sig == SIGCHLD) {
            int st;
            pid_t w = waitpid(pid, &st, WNOHANG);
            if (w == pid && (WIFEXITED(st) || WIFSIGNALED(st))) {
                rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                break;
            }
            continue;
        }
        if (sig == SIGUSR1)
            log_files_give(uid, gid);
        /* ^C on a terminal reached the whole process group already */
        if (si.si_code != SI_KERNEL)
            kill(pid, sig);
    }
    if (cfg.pid_file)
        unlink(cfg.pid_file);
    if (cfg.unix_path)
        unlink(cfg.unix_path);
    config_free();
    exit(rc);
}

/* nginx's worker_rlimit_nofile, by default: the soft descriptor limit (often
 * 1024) is raised to the hard one, and the event model's --max-conns, unless
 * given, is what that allows less a reserve for what else a worker opens:
 * static files and their cache, CGI pipes and spool files (--cgi-max each),
 * logs, listeners, epoll, app threads. At 1024 descriptors a server would
 * stop accepting long before memory or CPU run out. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rlim_t want = rl.rlim_max;
        if (want == RLIM_INFINITY || want > (1 << 20))
            want = 1 << 20; /* the event table has a slot per descriptor */
        if (want > rl.rlim_cur) {
            rl.rlim_cur = want;
            if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                warn("cannot raise the descriptor limit (RLIMIT_NOFILE) to %llu:",
                     (unsigned long long)want);
        }
    }
    if (cfg.max_conns_set)
        return;
    if (strcmp(cfg.model, "event") != 0)
        return; /* fork: --max-conns counts children (4096), not descriptors */
    long n = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                 ? (long)rl.rlim_cur
                 : 1L << 20;
    long reserve = n / 16 + 64 + 4L * cfg.cgi_max + 2L * cfg.threads;
    long conns = n - reserve;
    if (conns < 16)
        conns = 16;
    if (conns > 1000000)
        conns = 1000000;
    cfg.max_conns = (int)conns;
}

int main(int argc, char **argv)
{
    config_parse(argc, argv);
    log_tz_init(); /* read the zone once here: not in every forked child, nor as an app changes it */
    log_level = cfg.log_level;
    log_verbose_on = cfg.log_level >= LOG_DEBUG;
    raise_nofile();

    const struct model *model = model_find(cfg.model);
    if (!model) {
        fprintf(stderr, "forkhttpd: --model: unknown model '%s' (one of %s)\n", cfg.model,
                model_names());
        return 2;
    }
    for (int i = 0; i < cfg.nmounts; i++) {
        struct mount *m = &cfg.mounts[i];
        if (!m->dir)
            continue;
        m->dir_fd = open(m->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (m->dir_fd < 0) {
            fprintf(stderr, "forkhttpd: %s: %s\n", m->dir, strerror(errno));
            return 2;
        }
    }
    uid_t uid;
    gid_t gid;
    if (target_ids(&uid, &gid) < 0)
        return 2;
    if (cfg.error_log && error_log_open(cfg.error_log) < 0)
        return 2;
    if (access_log_open(cfg.access_log) < 0)
        return 2;
    /* certificates and keys: read now, while the key files may be readable
     * only by the user who starts the server (root) */
    if (tls_setup() < 0)
        return 2;
    if (compress_setup() < 0) { /* --compress: build/compress.so, before any fork */
        tls_free();
        return 2;
    }
    if (uid != (uid_t)-1) /* the server, as --user, must be able to reopen them */
        log_files_give(uid, gid);
    int port = 0;
    const char *where = cfg.host;
    char unix_where[256];
    int lfd = net_inherited(&port); /* systemd socket activation */
    if (lfd == -2)
        return 2;
    if (lfd >= 0) {
        where = "systemd socket";
    } else if (cfg.unix_path) {
        lfd = net_listen_unix(cfg.unix_path, cfg.backlog, cfg.unix_mode, uid, gid);
        snprintf(unix_where, sizeof unix_where, "unix:%s", cfg.unix_path);
        where = unix_where;
    } else {
        /* a listener per worker only makes sense for event workers */
        net_reuseport = cfg.reuseport && strcmp(model->name, "event") == 0;
        if (cfg.reuseport && !net_reuseport)
            log_info("--accept reuseport applies to the event model only");
        lfd = net_listen(cfg.host, cfg.port, cfg.backlog, &port);
    }
    if (lfd < 0) {
        tls_free();
        return 2;
    }
    net_listener_main(lfd, tls_enabled(), where, port);
    if (net_listen_extra(cfg.backlog) < 0) { /* --listen */
        close(lfd);
        net_close_extra();
        tls_free();
        return 2;
    }
    /* apps load (and --preload imports) after the privileges are dropped:
     * their code never runs as root when --user is given */
    /* with --user, files only root may remove or re-create: a root parent stays */
    int keeper = uid != (uid_t)-1 && (cfg.pid_file || cfg.unix_path || log_files_need_owner());
    if (write_pid_file() < 0 || (keeper && keep_root_parent(lfd, uid, gid) < 0) ||
        drop_privileges() < 0 || h_app_load() < 0) {
        close(lfd);
        if (cfg.pid_file && !keeper)
            unlink(cfg.pid_file);
        if (cfg.unix_path && !keeper)
            unlink(cfg.unix_path);
        net_close_extra();
        tls_free();
        return 2;
    }
    sig_install();
    if (geteuid() == 0 && !cfg.user && !cfg.allow_root)
        warn("serving as root: use --user NAME to drop privileges after binding "
             "(--allow-root silences this)");

    int workers = model->uses_workers ? cfg.workers : 1;
    char banner[512];
    size_t bn = 0;
    /* a line per listener, the main one first (tests read its port there) */
    for (int i = 0; i < net_nlisteners && bn < sizeof banner; i++)
        bn += (size_t)snprintf(banner + bn, sizeof banner - bn,
                               "Serving HTTP%s on %s port %d (model %s, %d worker%s) ...\n",
                               net_listeners[i].tls ? "S" : "", net_listeners[i].where,
                               net_listeners[i].port, model->name, workers,
                               workers == 1 ? "" : "s");
    announce_set(banner);
    /* The banner says "ready": with a listener per worker (reuseport) nothing
     * listens until the workers have opened theirs, so the master says it. */
    if (!net_reuseport)
        announce_ready();
    if (!model->uses_workers && cfg.workers_set)
        log_info("--workers is ignored by the %s model", model->name);

    if (sb_init() < 0)
        return 1;
    if (!model->uses_workers) { /* the server itself is the one "worker" */
        sb_self = &sb->slot[0];
        sb_self->pid = getpid();
        sb_self->state = SB_IDLE;
        sb->nslots = 1;
    }
    net_listen_fd = lfd;
    int rc = model->run(lfd);

    if (sig_close_on_stop != -2) /* else the stop signal closed it already */
        close(lfd);
    net_close_extra();
    tls_free();
    if (cfg.pid_file && !keeper) /* else the root parent removes them */
        unlink(cfg.pid_file);
    if (cfg.unix_path && !keeper)
        unlink(cfg.unix_path);
    h_app_unload(); /* the handles loaded before any fork (a worker closed its own copies) */
    config_free();
    sb_free();
    return rc;
}
