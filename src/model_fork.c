/* model_fork.c - the tutorial's concurrent server (part 3c..3h): a child per
 * connection.
 *
 *   loop {
 *       fd = accept(listener)         restarted after EINTR (SIGCHLD interrupts it)
 *       pid = fork()
 *       child:  close(listener); serve(fd); _exit(0)
 *       parent: close(fd)             else the parent leaks one fd per client and
 *   }                                 the client never sees EOF
 *
 *   SIGCHLD -> reap with waitpid(-1, &st, WNOHANG) in a loop: signals are not
 *   queued, so one SIGCHLD may stand for many finished children; without the
 *   reaping every finished child stays a zombie.
 *
 *   --lesson keep-dup-fd|no-reap|reap-once|no-eintr-retry puts one of these
 *   bugs back, to see it (docs/tutorial.md); never on by default.
 *
 *   Speed: after every fork() each page the parent writes is a copy-on-write
 *   fault, and the child faults on every page it touches. So the parent's
 *   loop writes as little as it can (its stack, and the block below, which
 *   children do not inherit), and the child does only its own connection
 *   (docs/benchmarks.md, issue 19). Without TLS and apps the fork() is
 *   glibc's _Fork(): the same system call, without the fork handlers.
 */
#include <alloca.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "conn.h"
#include "handler.h"
#include "log.h"
#include "model.h"
#include "sig.h"
#include "sigsafe.h"
#include "supervise.h"
#include "tls.h"
#include "worker.h"

/* The children alive, for the graceful stop. Changed by the SIGCHLD handler,
 * so the main loop changes it only with SIGCHLD blocked. Room for
 * --max-conns, in a mapping the children do not inherit (MADV_DONTFORK):
 * the parent's writes to it are no copy-on-write faults. */
static struct kids {
    volatile sig_atomic_t live;
    pid_t pid[];
} *kids;
/* The mapping: ALT_STACK bytes of the reaper's alternate signal stack, then
 * kids. On the main stack each signal frame (3.3 KiB with AVX-512 state)
 * wrote a page the last child still shared: a copy-on-write fault on about
 * every connection (issue 19). */
#define ALT_STACK (64 * 1024)
#define LOOP_ROOM 2048 /* stack the accept loop's frames use, with room */
static void *kids_map;
static size_t kids_len;
static int alt_stack_on;
/* --lesson reap-once: one waitpid() per SIGCHLD, the tutorial's bug */
static volatile sig_atomic_t reap_once;

/* "[ppid] reaped child PID, exit status N" for --verbose, async-signal-safe:
 * no printf inside a signal handler. */
static void say_reaped(pid_t pid, int status)
{
    struct sigsafe_line l = {0};
    sigsafe_str(&l, "[");
    sigsafe_uint(&l, (unsigned)getpid());
    sigsafe_str(&l, "] reaped child PID ");
    sigsafe_uint(&l, (unsigned)pid);
    if (WIFEXITED(status)) {
        sigsafe_str(&l, ", exit status ");
        sigsafe_uint(&l, (unsigned)WEXITSTATUS(status));
    } else {
        sigsafe_str(&l, ", killed by signal ");
        sigsafe_signal(&l, WTERMSIG(status));
    }
    sigsafe_write(&l, STDERR_FILENO);
}

static void reap_children(int signo)
{
    (void)signo;
    int saved_errno = errno; /* waitpid may change errno under the interrupted code */
    pid_t pid;
    int status;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (sb) {
            sb->reaped++;
            sb->slot[0].active--;
        }
        for (int i = 0; kids && i < kids->live; i++) {
            if (kids->pid[i] == pid) {
                kids->pid[i] = kids->pid[kids->live - 1];
                kids->live--;
                break;
            }
        }
        if (log_verbose_on)
            say_reaped(pid, status);
        if (reap_once)
            break; /* the other children that ended with this SIGCHLD stay zombies */
    }
    errno = saved_errno;
}

/* fork() failed (EAGAIN: process limit; ENOMEM): tell this client, go on.
 * Not inlined: its 4 KiB buffer would widen the accept loop's stack frame
 * to two pages, two copy-on-write faults per fork instead of one. */
static __attribute__((noinline)) void refuse(int fd)
{
    static const char msg[] =
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Server: " FH_SERVER "\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 20\r\n"
        "Retry-After: 1\r\n"
        "Connection: close\r\n"
        "\r\n"
        "Service Unavailable\n";
    ssize_t w = send(fd, msg, sizeof msg - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)w;
    /* half-close, then drain what the client sends for a moment: closing
     * with its request unread would reset the connection, answer and all */
    shutdown(fd, SHUT_WR);
    char buf[4096];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (poll(&p, 1, 200) > 0 && recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
        ;
}

/* Graceful stop: the children finish their connections (they got the same
 * SIGTERM if it came from a terminal or a process group; forward it anyway);
 * after --grace the rest are killed. */
static void wait_children(sigset_t *chld, const struct sigaction *reaper)
{
    if (cfg.lesson == LESSON_NO_REAP || cfg.lesson == LESSON_REAP_ONCE) {
        /* the lesson ends with the server: reap what it left, exit clean */
        reap_once = 0;
        sigaction(SIGCHLD, reaper, NULL);
        sigprocmask(SIG_BLOCK, chld, NULL);
        reap_children(SIGCHLD);
        sigprocmask(SIG_UNBLOCK, chld, NULL);
    }
    sigprocmask(SIG_BLOCK, chld, NULL);
    for (int i = 0; i < kids->live; i++)
        kill(kids->pid[i], SIGTERM);
    sigprocmask(SIG_UNBLOCK, chld, NULL);
    uint64_t end = now_ms() + (uint64_t)cfg.grace;
    while (kids->live > 0 && now_ms() < end)
        poll(NULL, 0, 10); /* SIGCHLD interrupts the sleep and reaps */
    sigprocmask(SIG_BLOCK, chld, NULL);
    if (kids->live > 0)
        warn("%d children still running after --grace; killing them", (int)kids->live);
    for (int i = 0; i < kids->live; i++)
        kill(kids->pid[i], SIGKILL);
    sigprocmask(SIG_UNBLOCK, chld, NULL);
    while (kids->live > 0)
        poll(NULL, 0, 10);
    if (alt_stack_on) { /* before its memory goes */
        stack_t ss = {.ss_flags = SS_DISABLE};
        sigaltstack(&ss, NULL);
        alt_stack_on = 0;
    }
    munmap(kids_map, kids_len);
    kids = NULL;
}

/* What --lesson breaks, for the warning at start. */
static const char *lesson_symptom(void)
{
    switch (cfg.lesson) {
    case LESSON_KEEP_DUP_FD:
        return "the parent keeps its copy of every client socket (clients never see EOF; "
               "accept fails with EMFILE once the descriptors run out)";
    case LESSON_NO_REAP:
        return "no SIGCHLD handler, no waitpid() (every finished child stays a zombie)";
    case LESSON_REAP_ONCE:
        return "one waitpid() per SIGCHLD (children that end together leave zombies)";
    case LESSON_NO_EINTR_RETRY:
        return "accept() interrupted by SIGCHLD (EINTR) is not restarted (the server exits "
               "when its first child ends)";
    default:
        return "";
    }
}

/* accept, fork, close: the tutorial's loop (model_fork sets it up). */
static __attribute__((noinline)) int accept_loop(int lfd, int has_status, int plain_fork,
                                                 int child_signals)
{
    int rc = 0;
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sig_close_on_stop = lfd; /* a stop closes it: accept() cannot miss the stop */
    while (!sig_stop) {
        if (sig_reopen) {
            sig_reopen = 0;
            access_log_reopen();
        }
        if (sig_reload) { /* SIGHUP: new certificates for the next children */
            sig_reload = 0;
            tls_reload();
        }
        /* --max-conns children at most: past it, leave new connections in
         * the listen queue until one ends (a flood of idle connections must
         * not become a flood of processes) */
        if (kids->live >= cfg.max_conns) { /* (two syscalls saved when not full) */
            sigprocmask(SIG_BLOCK, &chld, &old);
            while (kids->live >= cfg.max_conns && !sig_stop)
                sigsuspend(&old); /* SIGCHLD (a child reaped) or a stop */
            sigprocmask(SIG_SETMASK, &old, NULL);
        }
        if (sig_stop)
            break;
        union net_addr peer;
        int li; /* which listener (--listen) */
        int fd = net_accept_any(lfd, &peer, &li);
        if (fd < 0) {
            if (sig_stop)
                break;
            if (errno == EINTR && cfg.lesson == LESSON_NO_EINTR_RETRY) {
                log_error("accept: %s (EINTR), and --lesson no-eintr-retry does not restart "
                          "it: the server exits", strerror(EINTR));
                rc = 1;
                break;
            }
            if (errno == EINTR && log_verbose_on && !sig_stop)
                vlog("accept interrupted by a signal (EINTR); restarting it");
            accept_error(errno);
            continue;
        }
        char ip[INET6_ADDRSTRLEN];
        int port = 0;
        if (log_verbose_on) {
            net_addr_str(&peer, ip, sizeof ip, &port);
            vlog("accepted connection from %s port %d (fd %d)", ip, port, fd);
        }
        /* the Date header, rebuilt here once a second, not in every child;
         * and the time, which the child takes as its own until it waits */
        http_date_now();
        uint64_t t0 = now_ms();
        /* keep SIGCHLD out while the child is counted, so the count never goes negative */
        sigprocmask(SIG_BLOCK, &chld, &old);
        pid_t pid = plain_fork ? _Fork() : fork();
        if (pid == 0) {
            /* the child: the listening socket is the parent's business */
            sig_close_on_stop = -1; /* before the number can be reused */
            clock_hold(t0);
            if (has_status)
                net_queue_remember(lfd); /* the status page's listen queue */
            else
                sb_self = NULL; /* no status page to show the counters: a child
                                   writing them would fault in their page */
            close(lfd);
            net_close_extra();
            net_listen_fd = -1;
            if (child_signals) {
                signal(SIGCHLD, SIG_DFL);
                sigprocmask(SIG_SETMASK, &old, NULL);
            }
            if (log_verbose_on) /* (not two syscalls for nothing) */
                vlog("child PID %d serving %s port %d, parent PID %d", (int)getpid(), ip, port,
                     (int)getppid());
            worker_begin();
            serve_connection(fd, &peer, li);
            worker_end(WORKER_EXIT_NOW);
            _exit(0);
        }
        if (pid > 0) {
            kids->pid[kids->live++] = pid; /* fewer than --max-conns: see above */
            if (sb) { /* still under the SIGCHLD block: the handler cannot interleave */
                sb->slot[0].accepted++;
                sb->slot[0].active++;
            }
        }
        sigprocmask(SIG_SETMASK, &old, NULL);
        if (pid < 0) {
            log_error("fork:");
            refuse(fd);
        } else if (cfg.lesson == LESSON_KEEP_DUP_FD) {
            vlog("forked child PID %d; --lesson keep-dup-fd: parent keeps its copy of fd %d",
                 (int)pid, fd);
            continue; /* the bug: the descriptor leaks, the client waits for EOF */
        } else {
            vlog("forked child PID %d; parent closes its copy of fd %d", (int)pid, fd);
        }
        /* the parent: the child owns the connection now */
        close(fd);
    }
    return rc;
}

int model_fork(int lfd)
{
    /* what is mounted decides what a child may do (below) */
    int has_status = 0, has_app = 0, has_cgi = 0;
    for (int i = 0; i < cfg.nmounts; i++) {
        has_status |= cfg.mounts[i].kind == MOUNT_STATUS;
        has_app |= cfg.mounts[i].kind == MOUNT_APP;
        has_cgi |= cfg.mounts[i].kind == MOUNT_CGI;
    }
    kids_len = ALT_STACK + sizeof *kids + (size_t)cfg.max_conns * sizeof(pid_t);
    kids_map = mmap(NULL, kids_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (kids_map == MAP_FAILED) {
        log_error("fork model: mmap:");
        return 1;
    }
    madvise(kids_map, kids_len, MADV_DONTFORK);
    kids = (struct kids *)((char *)kids_map + ALT_STACK);
    /* the buffers every child needs, made once here: a child's malloc()
     * would write to the arena and the heap's top, two more faults */
    conn_pool_reserve();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = reap_children;
    sigemptyset(&sa.sa_mask);
    /* no SA_RESTART: accept() returns EINTR when a child is reaped, and we
     * restart it ourselves - the lesson of part 3 */
    sa.sa_flags = SA_NOCLDSTOP;
    /* The alternate stack, unless one is set already (ASan's) or an app is
     * mounted: its crash handler sets one of its own, which a child (that
     * does not have this mapping) must be able to use. */
    stack_t ss;
    if (!has_app && sigaltstack(NULL, &ss) == 0 && (ss.ss_flags & SS_DISABLE)) {
        ss = (stack_t){.ss_sp = kids_map, .ss_size = ALT_STACK};
        if (sigaltstack(&ss, NULL) == 0) {
            alt_stack_on = 1;
            sa.sa_flags |= SA_ONSTACK;
        }
    }
    if (cfg.lesson == LESSON_NO_REAP)
        signal(SIGCHLD, SIG_DFL); /* no handler, no waitpid(): zombies */
    else
        sigaction(SIGCHLD, &sa, NULL);
    reap_once = cfg.lesson == LESSON_REAP_ONCE;
    if (cfg.lesson)
        warn("--lesson %s: this server is DELIBERATELY BROKEN to show a bug of the tutorial: "
             "%s; never use it for real", cfg.lesson_name, lesson_symptom());
    /* _Fork() is fork() without glibc's fork handlers (its malloc and stdio
     * locks taken and reset: 3 page faults, ~5% of a connection). Safe in
     * this single-threaded process unless a library registered its own
     * pthread_atfork handlers: OpenSSL (TLS) and the WSGI interpreter do, a
     * C app may, so with those the whole fork(). */
    int plain_fork = !tls_enabled() && !has_app;
    /* A child that starts processes of its own (CGI scripts; an app might)
     * needs SIGCHLD back as it was: the parent's reaper would take their
     * exit statuses and touch the parent's list of children, which is not
     * mapped in the child. A child that starts none never gets a SIGCHLD,
     * and is spared the two calls (and two code pages, issue 19). */
    int child_signals = has_cgi || has_app;

    /* The loop writes its stack after every fork(), a copy-on-write fault
     * per page while the last child lives. Its frames need under 2 KiB, but
     * where they start within a page depends on the environment's size
     * (with one of eight sizes tried, they crossed into a second page). So
     * the loop starts at least LOOP_ROOM bytes above a page boundary. */
    char here;
    size_t in_page = (uintptr_t)&here % 4096;
    if (in_page < LOOP_ROOM + 256) {
        char *gap = alloca(in_page + 256); /* (never touched) */
        __asm__ volatile("" : : "r"(gap) : "memory");
    }
    int rc = accept_loop(lfd, has_status, plain_fork, child_signals);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    wait_children(&chld, &sa);
    return rc;
}
