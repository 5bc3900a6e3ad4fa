/* test_confine.c - unit tests of src/confine.c (TAP, run by prove).
 *
 * A scratch tree in $TMPDIR:
 *   base/outside.txt            not to be reached
 *   base/fifo                   a FIFO outside the root
 *   base/root/file.txt          "inside\n"
 *   base/root/sub/rel-in        -> ../file.txt               (inside)
 *   base/root/abs-in            -> base/root/file.txt        (absolute, inside)
 *   base/root/abs-out           -> base/outside.txt          (absolute, outside)
 *   base/root/rel-out           -> ../outside.txt            (relative, outside)
 *   base/root/zero              -> /dev/zero                 (a device outside)
 *   base/root/fifo-out          -> base/fifo
 * Every case runs through confine_open (openat2, then the fallback where the
 * kernel refuses) and through confine_open_fallback directly (the path of
 * kernels without openat2).
 */
#include "confine.h"
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char base[PATH_MAX];
static int rootfd = -1;

static void path_of(char *buf, size_t cap, const char *name)
{
    if ((size_t)snprintf(buf, cap, "%s/%s", base, name) >= cap) {
        fprintf(stderr, "path too long\n");
        exit(2);
    }
}

static void must(int ok, const char *what)
{
    if (!ok) {
        perror(what);
        exit(2);
    }
}

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(base, sizeof base, "%s/confine-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    must(mkdtemp(base) != NULL, "mkdtemp");
    char p[PATH_MAX], t[PATH_MAX];
    path_of(p, sizeof p, "outside.txt");
    FILE *f = fopen(p, "w");
    must(f != NULL, "outside.txt");
    fputs("TOP SECRET\n", f);
    fclose(f);
    path_of(p, sizeof p, "fifo");
    must(mkfifo(p, 0600) == 0, "mkfifo");
    path_of(p, sizeof p, "root");
    must(mkdir(p, 0700) == 0, "mkdir root");
    path_of(p, sizeof p, "root/sub");
    must(mkdir(p, 0700) == 0, "mkdir sub");
    path_of(p, sizeof p, "root/file.txt");
    f = fopen(p, "w");
    must(f != NULL, "file.txt");
    fputs("inside\n", f);
    fclose(f);
    path_of(p, sizeof p, "root/sub/rel-in");
    must(symlink("../file.txt", p) == 0, "rel-in");
    path_of(t, sizeof t, "root/file.txt");
    path_of(p, sizeof p, "root/abs-in");
    must(symlink(t, p) == 0, "abs-in");
    path_of(t, sizeof t, "outside.txt");
    path_of(p, sizeof p, "root/abs-out");
    must(symlink(t, p) == 0, "abs-out");
    path_of(p, sizeof p, "root/rel-out");
    must(symlink("../outside.txt", p) == 0, "rel-out");
    path_of(p, sizeof p, "root/zero");
    must(symlink("/dev/zero", p) == 0, "zero");
    path_of(t, sizeof t, "fifo");
    path_of(p, sizeof p, "root/fifo-out");
    must(symlink(t, p) == 0, "fifo-out");
    path_of(p, sizeof p, "root");
    rootfd = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
    must(rootfd >= 0, "open root");
}

static void teardown(void)
{
    static const char *const names[] = {
        "root/sub/rel-in", "root/abs-in", "root/abs-out", "root/rel-out", "root/zero",
        "root/fifo-out", "root/file.txt", "outside.txt", "fifo",
    };
    char p[PATH_MAX];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        path_of(p, sizeof p, names[i]);
        unlink(p);
    }
    path_of(p, sizeof p, "root/sub");
    rmdir(p);
    path_of(p, sizeof p, "root");
    rmdir(p);
    rmdir(base);
    close(rootfd);
}

typedef int (*open_fn)(int, const char *, int);

/* Opened, and the bytes read are want. */
static void opens_to(open_fn fn, const char *how, const char *rel, const char *want)
{
    errno = 0;
    int fd = fn(rootfd, rel, O_RDONLY | O_NONBLOCK);
    char buf[64] = "";
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (n > 0)
        buf[n] = 0;
    if (!ok(fd >= 0 && strcmp(buf, want) == 0, "%s: %s opens, reads the inside file", how, rel))
        diag("fd %d, errno %s, read '%s'", fd, strerror(errno), buf);
    if (fd >= 0) {
        int fl = fcntl(fd, F_GETFD);
        ok(fl >= 0 && (fl & FD_CLOEXEC), "%s: %s is close-on-exec", how, rel);
        close(fd);
    } else {
        ok(0, "%s: %s is close-on-exec", how, rel);
    }
}

/* Refused with errno want_errno, which maps to want_status. */
static void refused(open_fn fn, const char *how, const char *rel, int flags, int want_errno,
                    int want_status)
{
    errno = 0;
    int fd = fn(rootfd, rel, flags);
    int e = errno;
    if (!ok(fd < 0 && e == want_errno, "%s: %.40s refused with %s", how, rel,
            strerror(want_errno)))
        diag("fd %d, errno %s", fd, strerror(e));
    is_int(confine_status(e), want_status, "%s: %.40s -> %d", how, rel, want_status);
    if (fd >= 0)
        close(fd);
}

static void cases(open_fn fn, const char *how)
{
    opens_to(fn, how, "file.txt", "inside\n");
    opens_to(fn, how, "sub/rel-in", "inside\n");      /* relative symlink, inside */
    opens_to(fn, how, "abs-in", "inside\n");          /* absolute symlink, inside */
    opens_to(fn, how, "sub/../file.txt", "inside\n"); /* ".." that stays inside */
    refused(fn, how, "../outside.txt", O_RDONLY, EXDEV, 404);
    refused(fn, how, "sub/../../outside.txt", O_RDONLY, EXDEV, 404);
    refused(fn, how, "abs-out", O_RDONLY, EXDEV, 404);
    refused(fn, how, "rel-out", O_RDONLY, EXDEV, 404);
    refused(fn, how, "zero", O_RDONLY | O_NONBLOCK, EXDEV, 404);
    refused(fn, how, "zero", O_PATH, EXDEV, 404);
    refused(fn, how, "missing", O_RDONLY, ENOENT, 404);
    refused(fn, how, "file.txt/x", O_RDONLY, ENOTDIR, 404);

    /* the root itself, and O_PATH */
    int fd = fn(rootfd, ".", O_RDONLY);
    struct stat st;
    ok(fd >= 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode), "%s: . is the root directory",
       how);
    if (fd >= 0)
        close(fd);
    fd = fn(rootfd, "abs-in", O_PATH);
    int fl = fd >= 0 ? fcntl(fd, F_GETFL) : 0;
    ok(fd >= 0 && (fl & O_PATH) && fstat(fd, &st) == 0 && S_ISREG(st.st_mode),
       "%s: O_PATH gives an O_PATH fd of the target", how);
    if (fd >= 0)
        close(fd);

    /* ENAMETOOLONG: a name over NAME_MAX, a path over PATH_MAX -> 414 */
    char name[NAME_MAX + 2];
    memset(name, 'a', sizeof name - 1);
    name[sizeof name - 1] = 0;
    refused(fn, how, name, O_RDONLY, ENAMETOOLONG, 414);
    static char longpath[PATH_MAX + 16];
    for (size_t i = 0; i + 2 < sizeof longpath; i += 2)
        memcpy(longpath + i, "a/", 2);
    longpath[sizeof longpath - 1] = 0;
    refused(fn, how, longpath, O_RDONLY, ENAMETOOLONG, 414);
}

/* Is pid blocked in a system call (its /proc/PID/syscall starts with a
 * number, not "running")? */
static int in_syscall(pid_t pid)
{
    char p[64], buf[64] = "";
    snprintf(p, sizeof p, "/proc/%d/syscall", (int)pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return buf[0] >= '0' && buf[0] <= '9';
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Did a writer blocked in open() on the outside FIFO see a reader? A FIFO
 * opened for writing waits until someone opens it for reading: a child
 * waits there, and whether it got through tells whether the code under
 * test opened the FIFO (the old fallback did: it opened first, checked
 * after). Returns 1 opened, 0 not, -1 unsure. */
static int fifo_opened_by(int (*try_open)(void))
{
    char p[PATH_MAX];
    path_of(p, sizeof p, "fifo");
    pid_t pid = fork();
    if (pid == 0) {
        alarm(10);
        int fd = open(p, O_WRONLY | O_CLOEXEC); /* blocks until a reader opens */
        _exit(fd >= 0 ? 0 : 1);
    }
    if (pid < 0)
        return -1;
    /* wait until the child sits in open() */
    int r = 0;
    for (int i = 0; i < 200 && (r = in_syscall(pid)) == 0; i++)
        sleep_ms(5);
    if (r <= 0)
        sleep_ms(200); /* no /proc/PID/syscall here: give it time */
    int fd = try_open();
    int st = 0, done = 0;
    for (int i = 0; i < 60 && !done; i++) {
        done = waitpid(pid, &st, WNOHANG) == pid;
        if (!done)
            sleep_ms(5);
    }
    if (fd >= 0)
        close(fd);
    if (!done) {
        /* release it: open the FIFO ourselves, then reap */
        int rfd = open(p, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        waitpid(pid, &st, 0);
        if (rfd >= 0)
            close(rfd);
        return 0;
    }
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 1 : -1;
}

static int open_plain(void) /* what the old fallback did */
{
    return openat(rootfd, "fifo-out", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
}

static int open_fallback(void)
{
    int fd = confine_open_fallback(rootfd, "fifo-out", O_RDONLY | O_NONBLOCK);
    ok(fd < 0 && errno == EXDEV, "fallback: a symlink to a FIFO outside is refused (EXDEV)");
    return fd;
}

static int open_confined(void)
{
    int fd = confine_open(rootfd, "fifo-out", O_RDONLY | O_NONBLOCK);
    ok(fd < 0 && errno == EXDEV, "confine_open: a symlink to a FIFO outside is refused (EXDEV)");
    return fd;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    setup();
    cases(confine_open, "confine_open");
    cases(confine_open_fallback, "fallback");

    /* the fallback must check before it opens: the FIFO outside is never opened */
    is_int(fifo_opened_by(open_plain), 1, "control: a plain open of the FIFO is seen by the writer");
    is_int(fifo_opened_by(open_fallback), 0, "fallback: the FIFO outside is not opened");
    is_int(fifo_opened_by(open_confined), 0, "confine_open: the FIFO outside is not opened");

    /* one answer per errno, for static files and CGI alike */
    is_int(confine_status(ENOENT), 404, "ENOENT -> 404");
    is_int(confine_status(ENOTDIR), 404, "ENOTDIR -> 404");
    is_int(confine_status(EXDEV), 404, "EXDEV (outside the root) -> 404");
    is_int(confine_status(ELOOP), 404, "ELOOP -> 404");
    is_int(confine_status(EACCES), 403, "EACCES -> 403");
    is_int(confine_status(EPERM), 403, "EPERM -> 403");
    is_int(confine_status(ENXIO), 403, "ENXIO (a socket) -> 403");
    is_int(confine_status(ENAMETOOLONG), 414, "ENAMETOOLONG -> 414");
    is_int(confine_status(EMFILE), 503, "EMFILE -> 503");
    is_int(confine_status(ENFILE), 503, "ENFILE -> 503");
    is_int(confine_status(ENOMEM), 503, "ENOMEM -> 503");
    is_int(confine_status(EAGAIN), 503, "EAGAIN -> 503");
    is_int(confine_status(EIO), 500, "EIO -> 500");

    teardown();
    return done_testing();
}
