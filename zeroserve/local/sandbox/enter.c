/* zeroserve-enter: put this process into its pod, then exec the container's command.
 *
 * The same steps, in the same order, as the preexec_fn of enter.py (its module doc
 * names the man pages), done by a small program instead of Python between fork and
 * exec: zeroserve starts this helper with vfork (no preexec_fn), so the large
 * zeroserve process is not copied for each container start.
 *
 *   zeroserve-enter --err FD --ppid PID [--cgroup FILE]... [--netns PATH]
 *                   [--hostname NAME] [--mount SOURCE TARGET ro|rw]... -- COMMAND...
 *
 * 1. prctl(PR_SET_PDEATHSIG, SIGKILL); exit at once if the parent (PID) is gone already;
 * 2. its pid into each cgroup.procs FILE;
 * 3. setns into the network namespace at PATH;
 * 4. with --hostname: its own UTS namespace with that host name;
 * 5. with mounts: its own mount namespace, / made recursively private, every SOURCE
 *    opened first, then bind-mounted at its TARGET (remounted read-only for "ro");
 * 6. execvp(COMMAND).
 *
 * FD is the write end of a pipe the parent reads to its end: it is made close-on-exec
 * here, so a successful exec closes it with nothing written. A failed step writes
 * "ERRNO\nSTEP\nPATH" there and exits with 127; the parent raises that as OSError.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_ITEMS 256

static int err_fd = -1;

static void fail(int errnum, const char *step, const char *path)
{
    char buf[4096];
    int n = snprintf(buf, sizeof buf, "%d\n%s\n%s", errnum, step, path ? path : "");
    if (err_fd >= 0 && n > 0) {
        size_t len = (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
        ssize_t w = write(err_fd, buf, len);
        (void)w;
    }
    _exit(127);
}

static void usage(const char *why)
{
    fail(EINVAL, "zeroserve-enter usage", why);
}

int main(int argc, char **argv)
{
    const char *cgroups[MAX_ITEMS];
    const char *sources[MAX_ITEMS], *targets[MAX_ITEMS];
    int read_only[MAX_ITEMS], fds[MAX_ITEMS];
    int n_cgroups = 0, n_mounts = 0;
    const char *netns = NULL, *hostname = NULL;
    long ppid = -1;
    int i = 1;

    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        } else if (strcmp(a, "--err") == 0 && i + 1 < argc) {
            err_fd = atoi(argv[++i]);
            if (fcntl(err_fd, F_SETFD, FD_CLOEXEC) != 0) {
                int e = errno;
                err_fd = -1;
                fail(e, "fcntl", "--err");
            }
        } else if (strcmp(a, "--ppid") == 0 && i + 1 < argc) {
            ppid = atol(argv[++i]);
        } else if (strcmp(a, "--cgroup") == 0 && i + 1 < argc) {
            if (n_cgroups == MAX_ITEMS)
                usage("too many --cgroup");
            cgroups[n_cgroups++] = argv[++i];
        } else if (strcmp(a, "--netns") == 0 && i + 1 < argc) {
            netns = argv[++i];
        } else if (strcmp(a, "--hostname") == 0 && i + 1 < argc) {
            hostname = argv[++i];
        } else if (strcmp(a, "--mount") == 0 && i + 3 < argc) {
            if (n_mounts == MAX_ITEMS)
                usage("too many --mount");
            sources[n_mounts] = argv[++i];
            targets[n_mounts] = argv[++i];
            read_only[n_mounts] = strcmp(argv[++i], "ro") == 0;
            n_mounts++;
        } else {
            usage(a);
        }
    }
    if (i >= argc)
        usage("no command after --");

    /* 1. die with zeroserve; it may have died before the prctl */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (ppid > 0 && getppid() != (pid_t)ppid)
        _exit(127);

    /* 2. cgroups: counted from the first page */
    if (n_cgroups > 0) {
        char pid[32];
        int len = snprintf(pid, sizeof pid, "%ld", (long)getpid());
        for (int c = 0; c < n_cgroups; c++) {
            int fd = open(cgroups[c], O_WRONLY | O_CLOEXEC);
            if (fd < 0)
                fail(errno, "open", cgroups[c]);
            if (write(fd, pid, (size_t)len) != len)
                fail(errno, "write", cgroups[c]);
            close(fd);
        }
    }

    /* 3. the pod's network namespace */
    if (netns != NULL) {
        int fd = open(netns, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            fail(errno, "open", netns);
        if (setns(fd, CLONE_NEWNET) != 0)
            fail(errno, "setns", netns);
        close(fd);
    }

    /* 4. the pod's host name */
    if (hostname != NULL && hostname[0] != '\0') {
        size_t len = strlen(hostname);
        if (len > 63)
            len = 63;
        if (unshare(CLONE_NEWUTS) != 0)
            fail(errno, "unshare(CLONE_NEWUTS)", "");
        if (sethostname(hostname, len) != 0)
            fail(errno, "sethostname", hostname);
    }

    /* 5. volumes: every source opened before the first mount, so a mount over a parent
     * of another's source (an emptyDir on /tmp) does not hide it */
    if (n_mounts > 0) {
        if (unshare(CLONE_NEWNS) != 0)
            fail(errno, "unshare(CLONE_NEWNS)", "");
        if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
            fail(errno, "make-rprivate", "/");
        for (int m = 0; m < n_mounts; m++) {
            fds[m] = open(sources[m], O_PATH | O_CLOEXEC);
            if (fds[m] < 0)
                fail(errno, "open", sources[m]);
        }
        for (int m = 0; m < n_mounts; m++) {
            char src[64];
            snprintf(src, sizeof src, "/proc/self/fd/%d", fds[m]);
            if (mount(src, targets[m], NULL, MS_BIND | MS_REC, NULL) != 0)
                fail(errno, "bind mount", targets[m]);
            if (read_only[m] &&
                mount("none", targets[m], NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) != 0)
                fail(errno, "remount ro", targets[m]);
        }
        for (int m = 0; m < n_mounts; m++)
            close(fds[m]);
    }

    /* 6. the container's command */
    execvp(argv[i], &argv[i]);
    fail(errno, "exec", argv[i]);
    return 127;
}
