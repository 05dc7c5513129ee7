// The code that must run between clone and exec. Everything else lives in Swift.
// The child shares the parent's memory until it execs (CLONE_VM | CLONE_VFORK, like posix_spawn):
// starting it costs no page-table copy of stepguard's large address space, and no copy-on-write
// faults afterwards. So the child only makes system calls, writes nothing but its own stack, and
// runs with every signal blocked until its handlers are reset to the defaults.
//
// Longer than 500 lines on purpose: the child's stages (namespaces, mounts and covers, the step's
// init, limits, exec) run in this order under the rules above and read best in that order in one
// file; the stages large enough to read on their own are apart (capture.c, names.c).
#define _GNU_SOURCE
#include "csandbox.h"
#include "capture.h"
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int sg_set_child_subreaper(void) {
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0 ? 0 : errno;
}

typedef struct { int stage; int error; int failed_path; } child_report;
/// failed_path of the report the init sends when protect_kernel_knobs is done (not a failure).
enum { KNOBS_DONE = -2 };

static void child_fail(int fd, sg_stage stage, int error, int failed_path) {
    child_report report = { stage, error, failed_path };
    (void)!write(fd, &report, sizeof report);
    _exit(127);
}

/// Writes `text` to a /proc file; returns 0 or errno.
static int write_file(const char *file, const char *text) {
    int fd = open(file, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    ssize_t length = (ssize_t)strlen(text);
    int error = write(fd, text, (size_t)length) == length ? 0 : errno;
    close(fd);
    return error;
}

/// "ID ID 1\n" for an id map, without stdio (not async-signal-safe).
static void id_map_line(char *buffer, unsigned id) {
    char digits[16];
    int count = 0;
    do { digits[count++] = (char)('0' + id % 10); id /= 10; } while (id);
    int at = 0;
    for (int copy = 0; copy < 2; copy++) {
        for (int i = count - 1; i >= 0; i--) buffer[at++] = digits[i];
        buffer[at++] = ' ';
    }
    buffer[at++] = '1';
    buffer[at++] = '\n';
    buffer[at] = 0;
}

static int bring_up_loopback(void) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno;
    struct ifreq request;
    memset(&request, 0, sizeof request);
    strcpy(request.ifr_name, "lo");
    int error = 0;
    if (ioctl(fd, SIOCGIFFLAGS, &request) != 0) error = errno;
    request.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (!error && ioctl(fd, SIOCSIFFLAGS, &request) != 0) error = errno;
    close(fd);
    return error;
}

/// Sends `count` descriptors (none is fine) with `payload` to the parent over `channel` in one message.
static int send_descriptors(const int *fds, int count, const void *payload, size_t size, int channel) {
    struct iovec vector = { (void *)payload, size };
    union { struct cmsghdr header; char space[CMSG_SPACE(sizeof(int) * SG_CAPTURE_SOCKETS)]; } control;
    memset(&control, 0, sizeof control);
    struct msghdr message = { 0 };
    message.msg_iov = &vector;
    message.msg_iovlen = 1;
    if (count > 0) {
        message.msg_control = control.space;
        message.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)count);
        struct cmsghdr *header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_SOCKET;
        header->cmsg_type = SCM_RIGHTS;
        header->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)count);
        memcpy(CMSG_DATA(header), fds, sizeof(int) * (size_t)count);
    }
    return sendmsg(channel, &message, MSG_NOSIGNAL) == (ssize_t)size ? 0 : errno;
}

/// Sends descriptor `fd` to the parent over `channel` (one byte with SCM_RIGHTS).
static int send_descriptor(int fd, int channel) {
    char byte = 'D';
    return send_descriptors(&fd, 1, &byte, 1, channel);
}

/// Listens on 127.0.0.1:port and sends the socket to the parent over `channel`.
static int hand_over_listener(uint16_t port, int channel) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address;
    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&address, sizeof address) != 0 || listen(fd, 1024) != 0) {
        int error = errno;
        close(fd);
        return error;
    }
    int error = send_descriptor(fd, channel);
    close(fd);
    return error;
}

/// Receives one message of send_descriptors: `size` bytes into `payload` and up to `max` descriptors
/// into `fds`. Returns how many descriptors came, or -1.
static int receive_descriptors(int channel, void *payload, size_t size, int *fds, int max) {
    struct iovec vector = { payload, size };
    union { struct cmsghdr header; char space[CMSG_SPACE(sizeof(int) * SG_CAPTURE_SOCKETS)]; } control;
    struct msghdr message = { 0 };
    message.msg_iov = &vector;
    message.msg_iovlen = 1;
    message.msg_control = control.space;
    message.msg_controllen = sizeof control.space;
    ssize_t got;
    do { got = recvmsg(channel, &message, MSG_CMSG_CLOEXEC); } while (got < 0 && errno == EINTR);
    if (got != (ssize_t)size) return -1;
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    if (!header) return 0;
    if (header->cmsg_type != SCM_RIGHTS) return -1;
    int count = (int)((header->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    if (count > max) return -1;
    memcpy(fds, CMSG_DATA(header), sizeof(int) * (size_t)count);
    return count;
}

static int receive_listener(int channel) {
    char byte;
    int fd = -1;
    return receive_descriptors(channel, &byte, 1, &fd, 1) == 1 ? fd : -1;
}

/// Receives what set_tripwires sent: the inotify instance and the names listener, into `result`.
static void receive_tripwires(int channel, sg_spawn_result *result) {
    int fds[2] = { -1, -1 };
    int names_error = EIO;
    int count = receive_descriptors(channel, &names_error, sizeof names_error, fds, 2);
    result->tripwire_fd = count >= 1 ? fds[0] : -1;
    result->names_fd = count == 2 ? fds[1] : -1;
    result->names_error = count == 2 ? 0 : names_error;
}

/// What the child tells the parent about capture, with the sockets that exist (`present` bits by index).
typedef struct { int stage; int error; int present; } capture_report;

/// Sets up capture (resolv.conf, routes, nf_tables, sockets) and sends its report and sockets to
/// the parent. Failing is not fatal: the report says where.
static void hand_over_capture(const sg_spawn_options *options, int channel) {
    capture_report report = { SG_CAPTURE_NONE, 0, 0 };
    int fds[SG_CAPTURE_SOCKETS];
    for (int i = 0; i < SG_CAPTURE_SOCKETS; i++) fds[i] = -1;
    // First the resolver the step is told about: search domains of the host's file would turn every
    // short name into a query for a name under them.
    if (options->resolv_conf && (mount(options->resolv_conf, "/etc/resolv.conf", NULL, MS_BIND, NULL) != 0
                                 || mount(NULL, "/etc/resolv.conf", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
        && errno != ENOENT) {
        report.stage = SG_CAPTURE_RESOLV_CONF;
        report.error = errno;
    }
    if (report.stage == SG_CAPTURE_NONE) report.stage = sg_capture_setup(SG_CAPTURE_PORT, &report.error);
    if (report.stage == SG_CAPTURE_NONE && (report.error = sg_capture_sockets(fds)))
        report.stage = SG_CAPTURE_SOCKETS_STAGE;
    int present[SG_CAPTURE_SOCKETS];
    int count = 0;
    for (int i = 0; i < SG_CAPTURE_SOCKETS; i++) {
        if (fds[i] < 0) continue;
        if (report.stage == SG_CAPTURE_NONE) {
            report.present |= 1 << i;
            present[count++] = fds[i];
        }
    }
    (void)!send_descriptors(present, count, &report, sizeof report, channel);
    for (int i = 0; i < SG_CAPTURE_SOCKETS; i++) if (fds[i] >= 0) close(fds[i]);
}

/// Receives what hand_over_capture sent into `result`.
static void receive_capture(int channel, sg_spawn_result *result) {
    capture_report report = { SG_CAPTURE_SOCKETS_STAGE, EIO, 0 };
    int fds[SG_CAPTURE_SOCKETS];
    int count = receive_descriptors(channel, &report, sizeof report, fds, SG_CAPTURE_SOCKETS);
    if (count < 0) {
        report.stage = SG_CAPTURE_SOCKETS_STAGE;
        report.error = EIO;
        count = 0;
    }
    int next = 0;
    for (int i = 0; i < SG_CAPTURE_SOCKETS; i++)
        result->capture_fds[i] = (report.present & (1 << i)) && next < count ? fds[next++] : -1;
    while (next < count) close(fds[next++]);
    result->capture_stage = (sg_capture_stage)report.stage;
    result->capture_error = report.error;
}

/// Writes the single-line uid and gid maps of a new user namespace: `uid` and `gid` (the ids the
/// process had in the parent namespace) mapped to themselves.
static int map_ids(uid_t uid, gid_t gid) {
    char line[48];
    int error = write_file("/proc/self/setgroups", "deny");
    if (error && error != ENOENT) return error;
    id_map_line(line, uid);
    if ((error = write_file("/proc/self/uid_map", line))) return error;
    id_map_line(line, gid);
    return write_file("/proc/self/gid_map", line);
}

/// Makes the decoys inside the freshly covered directories, then watches the tripwire paths with
/// inotify and sends the instance to the parent. The watches are made here, before the step exists,
/// and the instance lives only in stepguard: nothing in the step's namespaces holds it.
static void set_tripwires(const sg_spawn_options *options, int report, int channel) {
    int index = 0;
    for (const char *const *dir = options->decoy_directories; dir && *dir; dir++, index++)
        if (mkdir(*dir, 0700) != 0) child_fail(report, SG_STAGE_DECOY, errno, index);
    for (const char *const *file = options->decoy_files; file && *file; file++, index++) {
        int fd = open(*file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) child_fail(report, SG_STAGE_DECOY, errno, index);
        close(fd);
    }
    if (options->tripwire_count <= 0) return;
    int watcher = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (watcher < 0) child_fail(report, SG_STAGE_TRIPWIRE, errno, -1);
    for (int i = 0; i < options->tripwire_count; i++) {
        int watch = inotify_add_watch(watcher, options->tripwire_paths[i], options->tripwire_masks[i] | IN_DONT_FOLLOW);
        if (watch < 0) child_fail(report, SG_STAGE_TRIPWIRE, errno, i);
        options->tripwire_watches[i] = watch;
        struct stat info;
        if (options->tripwire_identities && lstat(options->tripwire_paths[i], &info) == 0) {
            options->tripwire_identities[2 * i] = (uint64_t)info.st_dev;
            options->tripwire_identities[2 * i + 1] = (uint64_t)info.st_ino;
        }
    }
    // The names filter goes with the watches (one message: the inotify instance, then the
    // listener when there is one, after the errno of making it).
    int names = sg_names_listen();
    int names_error = names < 0 ? errno : 0;
    int fds[2] = { watcher, names };
    int error = send_descriptors(fds, names < 0 ? 1 : 2, &names_error, sizeof names_error, channel);
    close(watcher);
    if (names >= 0) close(names);
    if (error) child_fail(report, SG_STAGE_TRIPWIRE, error, -1);
}

/// The outer namespaces: user, network, mount and PID (the PID namespace takes the child's next
/// child, the init). Brings up loopback, hands the proxy's listener over and hides paths.
static void isolate_child(const sg_spawn_options *options, int report, int channel) {
    uid_t uid = getuid();
    gid_t gid = getgid();
    if (unshare(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID) != 0) child_fail(report, SG_STAGE_USER_NAMESPACE, errno, -1);
    int error = map_ids(uid, gid);
    if (error) child_fail(report, SG_STAGE_ID_MAP, error, -1);
    if ((error = bring_up_loopback())) child_fail(report, SG_STAGE_LOOPBACK, error, -1);
    if (options->proxy_port && (error = hand_over_listener(options->proxy_port, channel))) child_fail(report, SG_STAGE_LISTENER, error, -1);
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) child_fail(report, SG_STAGE_MOUNT_PRIVATE, errno, -1);
    if (options->capture && options->proxy_port) hand_over_capture(options, channel);
    int index = 0;
    for (const char *const *dir = options->hide_directories; dir && *dir; dir++, index++) {
        if (mount("stepguard-hidden", *dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0700") != 0)
            child_fail(report, SG_STAGE_HIDE, errno, index);
    }
    // Writable covers (tripwires): failing to make them costs the tripwires, not the isolation.
    if (options->cover_directory
        && mount("stepguard-covers", options->cover_directory, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=1m,nr_inodes=4096,mode=0700") != 0)
        child_fail(report, SG_STAGE_DECOY, errno, -1);
    int file_index = 0;
    for (const char *const *file = options->hide_files; file && *file; file++, index++, file_index++) {
        const char *source = options->hide_file_sources ? options->hide_file_sources[file_index] : options->empty_file;
        int writable = options->cover_directory && options->writable_covers && options->writable_covers[file_index];
        if (writable) {
            int fd = open(source, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
            if (fd < 0) child_fail(report, SG_STAGE_DECOY, errno, -1);
            close(fd);
        }
        unsigned long flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC | (writable ? 0 : MS_RDONLY);
        if (mount(source, *file, NULL, MS_BIND, NULL) != 0 || mount(NULL, *file, NULL, flags, NULL) != 0)
            child_fail(report, SG_STAGE_HIDE, errno, index);
    }
    if (options->cover_directory && umount2(options->cover_directory, MNT_DETACH) != 0) child_fail(report, SG_STAGE_DECOY, errno, -1);
    set_tripwires(options, report, channel);
}

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/// Sets close-on-exec on `fd` if it is open and lacks it; returns 0 or errno.
static int set_close_on_exec(int fd) {
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0 || (flags & FD_CLOEXEC)) return 0;
    return fcntl(fd, F_SETFD, flags | FD_CLOEXEC) == 0 ? 0 : errno;
}

/// The fallback for kernels without CLOSE_RANGE_CLOEXEC (before 5.11): marks the open descriptors
/// in first...last that /proc/self/fd lists, read with getdents64 into a stack buffer (no
/// allocation: the child shares the parent's memory). Returns 0, errno, or -1 when /proc cannot
/// be read.
static int close_on_exec_listed(unsigned first, unsigned last) {
    int directory = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (directory < 0) return -1;
    char buffer[4096];
    int result = 0;
    for (;;) {
        long count = syscall(SYS_getdents64, directory, buffer, sizeof buffer);
        if (count < 0) { result = -1; break; }
        if (count == 0) break;
        for (long offset = 0; offset < count;) {
            // struct linux_dirent64: u64 inode, s64 offset, u16 record length, u8 type, name.
            unsigned short length;
            memcpy(&length, buffer + offset + 16, sizeof length);
            const char *name = buffer + offset + 19;
            offset += length;
            if (name[0] < '0' || name[0] > '9') continue;
            unsigned fd = 0;
            for (const char *digit = name; *digit >= '0' && *digit <= '9'; digit++) fd = fd * 10 + (unsigned)(*digit - '0');
            if (fd < first || fd > last || (int)fd == directory) continue;
            int error = set_close_on_exec((int)fd);
            if (error) { close(directory); return error; }
        }
    }
    close(directory);
    return result;
}

/// The last resort without /proc: every descriptor number up to the soft limit (at most 2^20).
static int close_on_exec_counted(unsigned first, unsigned last) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return errno;
    unsigned end = limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur > (1U << 20) ? (1U << 20) : (unsigned)limit.rlim_cur;
    for (unsigned fd = first; fd <= last && fd < end; fd++) {
        int error = set_close_on_exec((int)fd);
        if (error) return error;
    }
    return 0;
}

/// Marks descriptors first...last close-on-exec; returns 0 or errno. close_range(2) does it in one
/// call (Linux 5.11+); older kernels get the open descriptors /proc/self/fd lists: a few
/// microseconds, where a loop over every number up to the limit takes 1.3 ms per 20,000 (about
/// 70 ms at 1,048,576, a limit common in containers) and misses descriptors above a lowered limit.
static int close_on_exec_range(unsigned first, unsigned last) {
    if (syscall(SYS_close_range, first, last, CLOSE_RANGE_CLOEXEC) == 0) return 0;
    if (errno != ENOSYS && errno != EINVAL) return errno;
    int listed = close_on_exec_listed(first, last);
    return listed >= 0 ? listed : close_on_exec_counted(first, last);
}

/// Leaves the step stdin, stdout, stderr and the descriptors it was asked to keep: everything else
/// (stepguard's own event-loop descriptors, sockets its parent left open) is closed on exec. A kept
/// descriptor must be open; it loses close-on-exec if it had it.
static int limit_inherited_descriptors(const int *keep, int count) {
    unsigned next = 3;
    for (int i = 0; i < count; i++) {
        unsigned fd = (unsigned)keep[i];
        if (fd < next) continue;
        int error = fd > next ? close_on_exec_range(next, fd - 1) : 0;
        if (error) return error;
        int flags = fcntl((int)fd, F_GETFD);
        if (flags < 0 || fcntl((int)fd, F_SETFD, flags & ~FD_CLOEXEC) != 0) return errno;
        next = fd + 1;
    }
    return close_on_exec_range(next, ~0U);
}

/// What the cloned child needs; lives on the parent's stack, which is untouched until the child
/// execs or exits (the child writes only `init_pid` there).
typedef struct {
    const char *path;
    char *const *argv;
    char *const *envp;
    const sg_spawn_options *options;
    pid_t parent;
    int report;
    int channel;
    int report_read;
    int channel_parent;
    int lifeline_read;
    int lifeline_write;
    int status_read;
    int status_write;
    pid_t init_pid;
} child_arguments;

/// The last steps before the step's program runs, in the process that becomes it: joins the pids
/// cgroup, sets no_new_privs and RLIMIT_NPROC, limits inherited descriptors, unblocks signals, execs.
static void exec_step(const child_arguments *arguments) {
    const sg_spawn_options *options = arguments->options;
    int report = arguments->report;
    if (options->cgroup_procs >= 0 && write(options->cgroup_procs, "0", 1) != 1) child_fail(report, SG_STAGE_LIMITS, errno, -1);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) child_fail(report, SG_STAGE_NO_NEW_PRIVS, errno, -1);
    if (options->max_processes > 0) {
        struct rlimit limit = { (rlim_t)options->max_processes, (rlim_t)options->max_processes };
        if (setrlimit(RLIMIT_NPROC, &limit) != 0) child_fail(report, SG_STAGE_LIMITS, errno, -1);
    }
    int descriptor_error = limit_inherited_descriptors(options->keep_fds, options->keep_fd_count);
    if (descriptor_error) child_fail(report, SG_STAGE_DESCRIPTORS, descriptor_error, -1);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(arguments->path, arguments->argv, arguments->envp);
    child_fail(report, SG_STAGE_EXEC, errno, -1);
}

/// fork(2) as a raw system call: a private copy of the address space, without glibc's fork
/// handlers (they would take locks of stepguard's other threads in the shared memory).
static pid_t raw_fork(void) {
    return (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
}

static long monotonic_milliseconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/// Closes descriptors first...last: close_range(2) (Linux 5.9+), else one by one up to the soft
/// limit (at most 2^20).
static void close_range_of(unsigned first, unsigned last) {
    if (syscall(SYS_close_range, first, last, 0) == 0) return;
    struct rlimit limit;
    unsigned end = getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur > (1U << 20)
        ? (1U << 20) : (unsigned)limit.rlim_cur;
    for (unsigned fd = first; fd <= last && fd < end; fd++) close((int)fd);
}

/// The lowest descriptor in `fds` at or above `from`, or ~0U.
static unsigned lowest_from(const int *fds, int count, unsigned from, unsigned lowest) {
    for (int i = 0; i < count; i++)
        if (fds[i] >= 0 && (unsigned)fds[i] >= from && (unsigned)fds[i] < lowest) lowest = (unsigned)fds[i];
    return lowest;
}

/// Closes every descriptor except those in `keep` and `also` (any order, duplicates allowed).
static void close_all_except(const int *keep, int count, const int *also, int also_count) {
    unsigned next = 0;
    for (;;) {
        unsigned lowest = lowest_from(also, also_count, next, lowest_from(keep, count, next, ~0U));
        if (lowest > next) close_range_of(next, lowest == ~0U ? ~0U : lowest - 1);
        if (lowest == ~0U) return;
        next = lowest + 1;
    }
}

/// The step's start inside an isolated step's PID namespace (pid 2, the init's child).
typedef struct { const child_arguments *arguments; int signals; } step_start;

enum { STEP_STACK_SIZE = 64 * 1024 };

static int step_main(void *raw) {
    const step_start *start = raw;
    close(start->signals);
    close(start->arguments->lifeline_read);
    close(start->arguments->status_write);
    exec_step(start->arguments);
    return 127;
}

/// The kernel's global knobs a step must not change, made read-only in the step's mount
/// namespace before the init locks its mounts. Writes to /proc/sys and sysfs are checked against
/// the host's uid 0, not against capabilities: a root step (mapped to the host's root) could
/// otherwise set kernel.core_pattern or kernel.modprobe, make the kernel run a program as real root
/// outside every namespace, and escape the step's network. Order matters for the fallback without
/// mount_setattr (which makes only the top mount read-only): binfmt_misc before /proc/sys, so the
/// recursive bind of /proc/sys copies binfmt_misc's read-only bind. /sys is last (index 6).
static const char *const kernel_knobs[] = {
    "/proc/sys/fs/binfmt_misc", "/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs", "/sys",
};

const char *sg_kernel_knob_path(int index) {
    return index >= 0 && index < (int)(sizeof kernel_knobs / sizeof *kernel_knobs) ? kernel_knobs[index] : NULL;
}

#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#define MOUNT_ATTR_NOSUID 0x00000002
#define MOUNT_ATTR_NODEV 0x00000004
#define MOUNT_ATTR_NOEXEC 0x00000008
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

/// Makes the mount at `path` and every mount below it read-only (and nosuid, nodev, noexec):
/// mount_setattr on Linux 5.12+, else a bind remount of the top mount only. Returns 0 or errno.
static int make_read_only(const char *path) {
    struct { unsigned long long set, clear, propagation, userns; } attributes = {
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, 0, 0, 0 };
    if (syscall(SYS_mount_setattr, AT_FDCWD, path, AT_RECURSIVE | AT_SYMLINK_NOFOLLOW, &attributes, sizeof attributes) == 0) return 0;
    if (errno != ENOSYS) return errno;
    return mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0 ? 0 : errno;
}

/// Makes each of kernel_knobs that exists read-only (a recursive bind of the path onto itself, so
/// that it is a mount of its own, then make_read_only); one that does not exist is skipped. A path
/// that exists but cannot be made read-only stops the step (SG_STAGE_KERNEL_KNOBS, its index).
static void protect_kernel_knobs(int report) {
    for (int index = 0; index < (int)(sizeof kernel_knobs / sizeof *kernel_knobs); index++) {
        const char *path = kernel_knobs[index];
        struct stat status;
        if (lstat(path, &status) != 0) {
            if (errno == ENOENT || errno == ENOTDIR) continue;
            child_fail(report, SG_STAGE_KERNEL_KNOBS, errno, index);
        }
        // binfmt_misc is guarded only where it is mounted (its own filesystem); the directory of
        // an unmounted one in /proc/sys is covered by /proc/sys itself.
        if (index == 0) {
            struct statfs filesystem;
            if (statfs(path, &filesystem) != 0) child_fail(report, SG_STAGE_KERNEL_KNOBS, errno, index);
            if (filesystem.f_type != BINFMTFS_MAGIC) continue;
        }
        int error = mount(path, path, NULL, MS_BIND | MS_REC, NULL) == 0 ? make_read_only(path) : errno;
        if (error) child_fail(report, SG_STAGE_KERNEL_KNOBS, error, index);
    }
}

/// pid 1 of the step's PID namespace (a private copy of stepguard's memory, so it may loop and
/// wait, but makes only system calls). It mounts the namespace's own /proc, enters a nested user
/// and mount namespace so that every mount stepguard made (hidden paths, /proc, the read-only
/// kernel knobs of protect_kernel_knobs) is locked — the
/// step, root in its namespaces or not, cannot unmount or change them — and becomes non-dumpable
/// (the step cannot read it through /proc). Then it starts the step, reaps whatever is orphaned,
/// and when the step's main process ends, gives the rest SIGTERM and, after the grace period,
/// leaves: its end kills everything left in the namespace. It also leaves when stepguard dies
/// (the lifeline pipe closes), so nothing of the step outlives stepguard.
static void init_main(const child_arguments *arguments) {
    const sg_spawn_options *options = arguments->options;
    int report = arguments->report;
    close(arguments->lifeline_write);
    // The kernel refuses a new /proc where the current one is partly covered (a container that
    // masks /proc/kcore and the like): the step then keeps that /proc, and stepguard says so.
    int proc_error = mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0 ? 0 : errno;
    if (write(arguments->status_write, &proc_error, sizeof proc_error) != sizeof proc_error) child_fail(report, SG_STAGE_PROC, errno, -1);
    // With the new /proc or the outer one: before the nested namespace below, which locks them.
    protect_kernel_knobs(report);
    // Tells sg_spawn that the init's own mounts are done (see read_report): from here on the names
    // filter's listener is stepguard's to read.
    child_report done = { SG_STAGE_NONE, 0, KNOBS_DONE };
    if (write(report, &done, sizeof done) != sizeof done) child_fail(report, SG_STAGE_KERNEL_KNOBS, errno, -1);
    uid_t uid = getuid();
    gid_t gid = getgid();
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) child_fail(report, SG_STAGE_LOCK, errno, -1);
    int error = map_ids(uid, gid);
    if (error) child_fail(report, SG_STAGE_LOCK, error, -1);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    prctl(PR_SET_NAME, (unsigned long)"stepguard-init", 0, 0, 0);

    // What the init and the step need: stdio, the pipes to stepguard, the cgroup, the --keep-fd ones.
    int keep[] = { 0, 1, 2, report, arguments->lifeline_read, arguments->status_write, options->cgroup_procs };
    close_all_except(keep, sizeof keep / sizeof *keep, options->keep_fds, options->keep_fd_count);
    sigset_t children;
    sigemptyset(&children);
    sigaddset(&children, SIGCHLD);
    int signals = signalfd(-1, &children, SFD_CLOEXEC | SFD_NONBLOCK);
    if (signals < 0) child_fail(report, SG_STAGE_FORK, errno, -1);

    // The step shares the init's (private) memory until it execs, like the first child shares
    // stepguard's: no second copy of the address space; the init sleeps until the exec.
    void *stack = mmap(NULL, STEP_STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) child_fail(report, SG_STAGE_FORK, errno, -1);
    step_start start = { arguments, signals };
    pid_t step = clone(step_main, (char *)stack + STEP_STACK_SIZE, CLONE_VM | CLONE_VFORK | SIGCHLD, &start);
    if (step < 0) child_fail(report, SG_STAGE_FORK, errno, -1);
    munmap(stack, STEP_STACK_SIZE);
    close(report);  // the parent reads end-of-file once the step has exec'd
    if (options->cgroup_procs >= 0) close(options->cgroup_procs);

    int step_status = 0;
    int step_ended = 0;
    long deadline = 0;
    for (;;) {
        for (;;) {
            int status;
            pid_t pid = waitpid(-1, &status, WNOHANG);
            if (pid > 0) {
                if (pid == step) {
                    step_status = status;
                    step_ended = 1;
                    // Leftovers get SIGTERM now and SIGKILL when the init leaves.
                    if (kill(-1, SIGTERM) == 0) deadline = monotonic_milliseconds() + options->grace_milliseconds;
                }
                continue;
            }
            if (pid < 0 && errno == EINTR) continue;
            if (pid < 0 && step_ended) {  // ECHILD: nothing is left in the namespace
                (void)!write(arguments->status_write, &step_status, sizeof step_status);
                _exit(0);
            }
            break;
        }
        int timeout = -1;
        if (step_ended) {
            long left = deadline - monotonic_milliseconds();
            if (left <= 0) {
                (void)!write(arguments->status_write, &step_status, sizeof step_status);
                _exit(0);  // the kernel kills what is left in the namespace
            }
            timeout = left > 60000 ? 60000 : (int)left;
        }
        struct pollfd waits[2] = { { signals, POLLIN, 0 }, { arguments->lifeline_read, POLLIN, 0 } };
        int ready = poll(waits, 2, timeout);
        if (ready < 0 && errno != EINTR) _exit(70);
        if (waits[1].revents) _exit(137);  // stepguard is gone: so is the step
        if (waits[0].revents & POLLIN) {
            struct signalfd_siginfo info;
            while (read(signals, &info, sizeof info) > 0) {}
        }
    }
}

/// The child of an isolated step, still sharing stepguard's memory: starts the init (pid 1 of the
/// new PID namespace), tells the parent its pid, and exits.
static void start_init(child_arguments *arguments) {
    pid_t init = raw_fork();
    if (init < 0) child_fail(arguments->report, SG_STAGE_FORK, errno, -1);
    if (init == 0) init_main(arguments);
    arguments->init_pid = init;
    _exit(0);
}

static int child_main(void *raw) {
    child_arguments *arguments = raw;
    const sg_spawn_options *options = arguments->options;
    int report = arguments->report;
    close(arguments->report_read);
    if (arguments->channel_parent >= 0) close(arguments->channel_parent);
    if (arguments->status_read >= 0) close(arguments->status_read);
    if (setpgid(0, 0) != 0) child_fail(report, SG_STAGE_PROCESS_GROUP, errno, -1);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) child_fail(report, SG_STAGE_DEATH_SIGNAL, errno, -1);
    if (getppid() != arguments->parent) _exit(137);  // the parent died before the death signal was set
    // The parent's handlers must never run here (they would touch the shared memory): reset every
    // disposition while all signals are still blocked.
    struct sigaction default_action;
    memset(&default_action, 0, sizeof default_action);
    default_action.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) sigaction(sig, &default_action, NULL);
    if (options->take_terminal) {
        struct sigaction ignore = default_action;
        ignore.sa_handler = SIG_IGN;
        sigaction(SIGTTOU, &ignore, NULL);
        (void)tcsetpgrp(STDIN_FILENO, getpid());
        sigaction(SIGTTOU, &default_action, NULL);
    }
    if (options->isolate) {
        isolate_child(options, report, arguments->channel);
        close(arguments->channel);
        start_init(arguments);
    }
    exec_step(arguments);
    return 127;
}

/// The child's stack: enough for isolate_child's buffers and the system-call wrappers.
enum { CHILD_STACK_SIZE = 256 * 1024 };

static void close_pair(int pair[2]) {
    if (pair[0] >= 0) close(pair[0]);
    if (pair[1] >= 0) close(pair[1]);
    pair[0] = pair[1] = -1;
}

/// Waits for `pid` (a child that has exited or is about to).
static void reap(pid_t pid) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
}

/// Waits for the child's report (EOF when the step has exec'd). Until the init reports KNOBS_DONE,
/// the names filter's listener (`names`, or -1) gets only the init's own calls (the step is not
/// yet forked): the read-only binds of protect_kernel_knobs are mounts the filter sends, and
/// stepguard reads the listener only after this returns, so they are let through here. One from
/// any other process is refused (EPERM), never let through unseen.
static ssize_t read_report(int report, child_report *child, int names, const child_arguments *arguments) {
    for (;;) {
        if (names >= 0) {
            struct pollfd fds[2] = { { report, POLLIN, 0 }, { names, POLLIN, 0 } };
            if (poll(fds, 2, -1) < 0) { if (errno == EINTR) continue; names = -1; continue; }
            if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR)) && (fds[1].revents & POLLIN)) {
                struct seccomp_notif request;
                memset(&request, 0, sizeof request);
                if (ioctl(names, SECCOMP_IOCTL_NOTIF_RECV, &request) != 0) {
                    if (errno != EINTR && errno != ENOENT) names = -1;
                    continue;
                }
                struct seccomp_notif_resp response = { request.id, 0, 0, 0 };
                if ((pid_t)request.pid == arguments->init_pid) response.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
                else response.error = -EPERM;
                (void)ioctl(names, SECCOMP_IOCTL_NOTIF_SEND, &response);
                continue;
            }
            if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR))) { if (fds[1].revents & (POLLHUP | POLLERR | POLLNVAL)) names = -1; continue; }
        }
        ssize_t got = read(report, child, sizeof *child);
        if (got < 0 && errno == EINTR) continue;
        if (got == sizeof *child && child->stage == SG_STAGE_NONE && child->failed_path == KNOBS_DONE) { names = -1; continue; }
        return got;
    }
}

sg_spawn_result sg_spawn(const char *path, char *const argv[], char *const envp[], const sg_spawn_options *options) {
    sg_spawn_result result = { -1, -1, -1, -1, -1, 0, 0, SG_STAGE_NONE, -1, -1, -1, 0, SG_CAPTURE_NONE, 0, { -1, -1, -1, -1, -1, -1, -1 } };
    int report[2] = { -1, -1 };
    int channel[2] = { -1, -1 };
    int lifeline[2] = { -1, -1 };
    int status[2] = { -1, -1 };
    int failed = pipe2(report, O_CLOEXEC) != 0;
    if (!failed && options->isolate)
        failed = socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, channel) != 0
            || pipe2(lifeline, O_CLOEXEC) != 0 || pipe2(status, O_CLOEXEC) != 0;
    void *stack = failed ? MAP_FAILED : mmap(NULL, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (failed || stack == MAP_FAILED) {
        result.error = errno;
        result.stage = SG_STAGE_FORK;
        close_pair(report); close_pair(channel); close_pair(lifeline); close_pair(status);
        return result;
    }
    if (!options->isolate) prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    child_arguments arguments = { path, argv, envp, options, getpid(), report[1], channel[1], report[0], channel[0],
                                  lifeline[0], lifeline[1], status[0], status[1], 0 };
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    // The parent sleeps until the child has exec'd or exited (CLONE_VFORK).
    pid_t pid = clone(child_main, (char *)stack + CHILD_STACK_SIZE, CLONE_VM | CLONE_VFORK | SIGCHLD, &arguments);
    int clone_error = errno;
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    munmap(stack, CHILD_STACK_SIZE);
    if (pid < 0) {
        result.error = clone_error;
        result.stage = SG_STAGE_FORK;
        close_pair(report); close_pair(channel); close_pair(lifeline); close_pair(status);
        return result;
    }
    close(report[1]);
    if (channel[1] >= 0) close(channel[1]);
    if (lifeline[0] >= 0) close(lifeline[0]);
    if (status[1] >= 0) close(status[1]);
    if (options->isolate && options->proxy_port) result.listener = receive_listener(channel[0]);
    if (options->isolate && options->proxy_port && options->capture && result.listener >= 0) receive_capture(channel[0], &result);
    if (options->isolate && options->tripwire_count > 0 && (!options->proxy_port || result.listener >= 0))
        receive_tripwires(channel[0], &result);
    if (channel[0] >= 0) close(channel[0]);
    child_report child = { 0, 0, -1 };
    ssize_t got;
    got = read_report(report[0], &child, result.names_fd, &arguments);
    close(report[0]);
    if (got == sizeof child) {
        // The child (or the init, or the step before exec) failed and has exited or is exiting:
        // reap it here, nothing of the step ran.
        if (arguments.init_pid > 0) reap(arguments.init_pid);
        reap(pid);
        if (result.listener >= 0) close(result.listener);
        if (result.tripwire_fd >= 0) close(result.tripwire_fd);
        if (result.names_fd >= 0) close(result.names_fd);
        result.names_fd = -1;
        for (int i = 0; i < SG_CAPTURE_SOCKETS; i++) {
            if (result.capture_fds[i] >= 0) close(result.capture_fds[i]);
            result.capture_fds[i] = -1;
        }
        if (lifeline[1] >= 0) close(lifeline[1]);
        if (status[0] >= 0) close(status[0]);
        result.listener = -1;
        result.tripwire_fd = -1;
        result.error = child.error;
        result.stage = (sg_stage)child.stage;
        result.failed_path = child.failed_path;
        return result;
    }
    result.group = pid;
    result.pid = pid;
    if (options->isolate) {
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        result.pid = arguments.init_pid;
        result.lifeline_fd = lifeline[1];
        result.status_fd = status[0];
        // Written by the init before it started the step, which has exec'd by now.
        if (read(status[0], &result.proc_error, sizeof result.proc_error) != sizeof result.proc_error) result.proc_error = EIO;
    }
    return result;
}

static const int forwarded_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
// Read and written by the handler (on whichever thread takes the signal) and by the supervising
// thread at once: atomics, so that a signal arriving while the group is being set is neither lost
// nor forwarded twice.
static volatile sig_atomic_t forward_group = 0;
static volatile sig_atomic_t held_signals = 0;

/// Forwards what is held to `group` (the held bits are taken once, by whoever gets there first).
static void forward_held(pid_t group) {
    int held = __atomic_exchange_n(&held_signals, 0, __ATOMIC_SEQ_CST);
    for (unsigned i = 0; i < sizeof forwarded_signals / sizeof *forwarded_signals; i++)
        if (held & (1 << forwarded_signals[i])) kill(-group, forwarded_signals[i]);
}

static void forward_signal(int sig) {
    int saved = errno;
    pid_t group = __atomic_load_n(&forward_group, __ATOMIC_SEQ_CST);
    if (group > 0) {
        kill(-group, sig);
    } else if (group == 0) {
        __atomic_fetch_or(&held_signals, 1 << sig, __ATOMIC_SEQ_CST);
        // The group may have been set meanwhile, after the setter took what was held.
        group = __atomic_load_n(&forward_group, __ATOMIC_SEQ_CST);
        if (group > 0) forward_held(group);
    }
    errno = saved;
}

void sg_forward_signals(pid_t group) {
    if (group == 0) {
        __atomic_store_n(&held_signals, 0, __ATOMIC_SEQ_CST);
        __atomic_store_n(&forward_group, 0, __ATOMIC_SEQ_CST);
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_handler = forward_signal;
        action.sa_flags = SA_RESTART;
        sigemptyset(&action.sa_mask);
        sigset_t forwarded;
        sigemptyset(&forwarded);
        for (unsigned i = 0; i < sizeof forwarded_signals / sizeof *forwarded_signals; i++) {
            sigaction(forwarded_signals[i], &action, NULL);
            sigaddset(&forwarded, forwarded_signals[i]);
        }
        // A parent may have started stepguard with these blocked (exec keeps the mask): this thread,
        // which supervises the step until it ends, takes them, so they are always forwarded.
        pthread_sigmask(SIG_UNBLOCK, &forwarded, NULL);
        return;
    }
    __atomic_store_n(&forward_group, group, __ATOMIC_SEQ_CST);
    forward_held(group);
}

void sg_forward_signals_stop(void) {
    __atomic_store_n(&forward_group, -1, __ATOMIC_SEQ_CST);
    for (unsigned i = 0; i < sizeof forwarded_signals / sizeof *forwarded_signals; i++)
        signal(forwarded_signals[i], SIG_DFL);
}

int sg_landlock_abi(void) {
    // landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION); 444 on every architecture.
    long abi = syscall(444, NULL, 0, 1U << 0);
    return abi >= 0 ? (int)abi : -errno;
}

int sg_is_memory_filesystem(const char *path) {
    struct statfs info;
    if (statfs(path, &info) != 0) return 0;
    return info.f_type == TMPFS_MAGIC || info.f_type == RAMFS_MAGIC;
}
