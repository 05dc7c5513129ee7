// Tripwires on names: the system calls that remove, rename, link or make a name (mkdir, mknod,
// symlink: the new name; an open that creates exclusively), and those that mount on, unmount,
// move, clone or reconfigure the mount at a name, are sent by a seccomp filter to a listener
// stepguard reads (sg_names_listen, sg_names_next, sg_names_continue), so that `rm ~/.npmrc`,
// `mv ~/.aws x`, `ln ~/.npmrc /tmp/x`, `mkdir ~/.aws` or `mount --bind /tmp/x ~/.aws` trip although
// the kernel refuses them (EBUSY on a mount point, EXDEV across mounts, EEXIST, EPERM) before
// inotify could see anything. stepguard only looks: every call continues as the step made it
// (SECCOMP_USER_NOTIF_FLAG_CONTINUE), and what the kernel then allows or refuses is decided by the
// mounts, not by this look.
#define _GNU_SOURCE
#include "csandbox.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define SG_NOTIFY_IF(number) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (number), 0, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF)
#ifndef __X32_SYSCALL_BIT
#define __X32_SYSCALL_BIT 0x40000000
#endif
/// The i386 numbers (a 64-bit step can make them with `int 0x80`).
enum { I386_OPEN = 5, I386_LINK = 9, I386_UNLINK = 10, I386_MKNOD = 14, I386_MOUNT = 21, I386_UMOUNT = 22, I386_RENAME = 38, I386_MKDIR = 39,
       I386_RMDIR = 40, I386_UMOUNT2 = 52, I386_SYMLINK = 83, I386_MKDIRAT = 296, I386_MKNODAT = 297, I386_UNLINKAT = 301,
       I386_OPENAT = 295, I386_RENAMEAT = 302, I386_LINKAT = 303, I386_SYMLINKAT = 304, I386_RENAMEAT2 = 353 };
/// The low and high halves of argument `n` (little-endian).
#define SG_ARG_LOW(n) (offsetof(struct seccomp_data, args) + 8 * (n))
#define SG_ARG_HIGH(n) (offsetof(struct seccomp_data, args) + 8 * (n) + 4)
/// Ends a branch: mount(2) `number` is sent unless it is a mount of a new file system with flags
/// MS_NOSUID | MS_NODEV | MS_NOEXEC and no options, which goes ahead unseen, and everything else
/// is allowed. That one form is the `proc` mount of the step's PID namespace, which its init
/// makes under this filter while stepguard, still starting the step, reads no listener yet
/// (sending it would hang the start); a mount of a new file system shows nothing of what it
/// covers. Every bind, move, remount and propagation change (MS_BIND, MS_MOVE, MS_REMOUNT, ...
/// set a flag), and every mount with options, is sent.
#define SG_MOUNT_LENGTH 11
#define SG_MOUNT_THEN_ALLOW(number) \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (number), 0, 9), \
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SG_ARG_LOW(3)), \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MS_NOSUID | MS_NODEV | MS_NOEXEC, 0, 6), \
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SG_ARG_HIGH(3)), \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 4), \
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SG_ARG_LOW(4)), \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 2), \
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SG_ARG_HIGH(4)), \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0), \
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF), \
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
/// Open `number` (its flags in argument `flags`) is sent when it creates exclusively (O_CREAT |
/// O_EXCL): onto a hidden file it fails with EEXIST before anything is opened, so inotify sees
/// nothing, like mkdir onto one. Other opens go ahead unseen (a block of SG_OPEN_LENGTH).
#define SG_OPEN_LENGTH 6
#define SG_EXCLUSIVE_OPEN(number, flags) \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (number), 0, 5), \
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SG_ARG_LOW(flags)), \
    BPF_STMT(BPF_ALU | BPF_AND | BPF_K, O_CREAT | O_EXCL), \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, O_CREAT | O_EXCL, 0, 1), \
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF), \
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
/// The mount API's calls have one number on every architecture (x86-64, x32 with its bit, i386).
enum { SG_OPEN_TREE = 428, SG_MOVE_MOUNT = 429, SG_FSPICK = 433, SG_MOUNT_SETATTR = 442 };
/// openat2 (the same number everywhere): its flags are in a structure the filter cannot read, so
/// every call is sent and the listener reads the flags (only an exclusive create is a trip).
enum { SG_OPENAT2 = 437 };
/// io_uring's calls (the same numbers everywhere too). A ring's requests (IORING_OP_MKDIRAT,
/// UNLINKAT, RENAMEAT, LINKAT, SYMLINKAT) make these name calls inside the kernel, where no
/// seccomp filter sees them: under the names filter io_uring does not exist (ENOSYS, the answer
/// of a kernel without it; programs fall back to plain system calls).
enum { SG_IO_URING_SETUP = 425, SG_IO_URING_ENTER = 426, SG_IO_URING_REGISTER = 427 };
#define SG_REFUSE_IF(number) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (number), 0, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS)
/// i386's umount(name), which x86-64 does not have: classified under a number of its own.
enum { SG_I386_OLD_UMOUNT = -2 };
#endif

int sg_names_listen(void) {
#if defined(__x86_64__)
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 2 + 2 * 3 + 2 * 20 + 2 * SG_OPEN_LENGTH + SG_MOUNT_LENGTH),  // else: i386, below
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_STMT(BPF_ALU | BPF_AND | BPF_K, ~(uint32_t)__X32_SYSCALL_BIT),  // x32 numbers are x86-64's with this bit
        // First: openat and open are the only frequent calls whose answer depends on their
        // arguments (the kernel's cache of always-allowed calls cannot skip the filter for them).
        SG_EXCLUSIVE_OPEN(SYS_openat, 2), SG_EXCLUSIVE_OPEN(SYS_open, 1),
        SG_REFUSE_IF(SG_IO_URING_SETUP), SG_REFUSE_IF(SG_IO_URING_ENTER), SG_REFUSE_IF(SG_IO_URING_REGISTER),
        SG_NOTIFY_IF(SYS_unlink), SG_NOTIFY_IF(SYS_rmdir), SG_NOTIFY_IF(SYS_rename), SG_NOTIFY_IF(SYS_link),
        SG_NOTIFY_IF(SYS_unlinkat), SG_NOTIFY_IF(SYS_renameat), SG_NOTIFY_IF(SYS_linkat), SG_NOTIFY_IF(SYS_renameat2),
        SG_NOTIFY_IF(SYS_mkdir), SG_NOTIFY_IF(SYS_mkdirat), SG_NOTIFY_IF(SYS_mknod), SG_NOTIFY_IF(SYS_mknodat),
        SG_NOTIFY_IF(SYS_symlink), SG_NOTIFY_IF(SYS_symlinkat), SG_NOTIFY_IF(SYS_umount2),
        SG_NOTIFY_IF(SG_OPEN_TREE), SG_NOTIFY_IF(SG_MOVE_MOUNT), SG_NOTIFY_IF(SG_FSPICK), SG_NOTIFY_IF(SG_MOUNT_SETATTR),
        SG_NOTIFY_IF(SG_OPENAT2),
        SG_MOUNT_THEN_ALLOW(SYS_mount),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        SG_EXCLUSIVE_OPEN(I386_OPENAT, 2), SG_EXCLUSIVE_OPEN(I386_OPEN, 1),
        SG_REFUSE_IF(SG_IO_URING_SETUP), SG_REFUSE_IF(SG_IO_URING_ENTER), SG_REFUSE_IF(SG_IO_URING_REGISTER),
        SG_NOTIFY_IF(I386_UNLINK), SG_NOTIFY_IF(I386_RMDIR), SG_NOTIFY_IF(I386_RENAME), SG_NOTIFY_IF(I386_LINK),
        SG_NOTIFY_IF(I386_UNLINKAT), SG_NOTIFY_IF(I386_RENAMEAT), SG_NOTIFY_IF(I386_LINKAT), SG_NOTIFY_IF(I386_RENAMEAT2),
        SG_NOTIFY_IF(I386_MKDIR), SG_NOTIFY_IF(I386_MKDIRAT), SG_NOTIFY_IF(I386_MKNOD), SG_NOTIFY_IF(I386_MKNODAT),
        SG_NOTIFY_IF(I386_SYMLINK), SG_NOTIFY_IF(I386_SYMLINKAT), SG_NOTIFY_IF(I386_UMOUNT), SG_NOTIFY_IF(I386_UMOUNT2),
        SG_NOTIFY_IF(SG_OPEN_TREE), SG_NOTIFY_IF(SG_MOVE_MOUNT), SG_NOTIFY_IF(SG_FSPICK), SG_NOTIFY_IF(SG_MOUNT_SETATTR),
        SG_NOTIFY_IF(SG_OPENAT2),
        SG_MOUNT_THEN_ALLOW(I386_MOUNT),
    };
    struct sock_fprog program = { (unsigned short)(sizeof filter / sizeof *filter), filter };
    int fd = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &program);
    if (fd >= 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
        int error = errno;
        close(fd);
        errno = error;
        return -1;
    }
    return fd;
#else
    errno = ENOSYS;
    return -1;
#endif
}

/// The operation of system call `number` of `arch`, and where its (dirfd, path) pairs are among
/// its arguments (dirfd -1: AT_FDCWD); 0 pairs for a call the filter does not send.
static int classify(uint32_t arch, int number, int positions[2][2], int *count) {
    int nr = number;
#if defined(__x86_64__)
    if (arch == AUDIT_ARCH_I386) {
        const int map[][2] = { { I386_UNLINK, SYS_unlink }, { I386_RMDIR, SYS_rmdir }, { I386_RENAME, SYS_rename },
                               { I386_LINK, SYS_link }, { I386_UNLINKAT, SYS_unlinkat }, { I386_RENAMEAT, SYS_renameat },
                               { I386_LINKAT, SYS_linkat }, { I386_RENAMEAT2, SYS_renameat2 }, { I386_MKDIR, SYS_mkdir },
                               { I386_MKDIRAT, SYS_mkdirat }, { I386_MKNOD, SYS_mknod }, { I386_MKNODAT, SYS_mknodat },
                               { I386_SYMLINK, SYS_symlink }, { I386_SYMLINKAT, SYS_symlinkat }, { I386_MOUNT, SYS_mount },
                               { I386_UMOUNT, SG_I386_OLD_UMOUNT }, { I386_UMOUNT2, SYS_umount2 }, { SG_OPEN_TREE, SG_OPEN_TREE },
                               { SG_MOVE_MOUNT, SG_MOVE_MOUNT }, { SG_FSPICK, SG_FSPICK }, { SG_MOUNT_SETATTR, SG_MOUNT_SETATTR },
                               { I386_OPEN, SYS_open }, { I386_OPENAT, SYS_openat }, { SG_OPENAT2, SG_OPENAT2 } };
        nr = -1;
        for (size_t i = 0; i < sizeof map / sizeof *map; i++) if (map[i][0] == number) nr = map[i][1];
    } else {
        nr = number & ~__X32_SYSCALL_BIT;
    }
    switch (nr) {
    case SYS_unlink: case SYS_rmdir:
        *count = 1; positions[0][0] = -1; positions[0][1] = 0;
        return SG_NAME_DELETE;
    case SYS_unlinkat:
        *count = 1; positions[0][0] = 0; positions[0][1] = 1;
        return SG_NAME_DELETE;
    case SYS_rename: case SYS_link:
        *count = 2; positions[0][0] = -1; positions[0][1] = 0; positions[1][0] = -1; positions[1][1] = 1;
        return nr == SYS_link ? SG_NAME_LINK : SG_NAME_RENAME;
    case SYS_renameat: case SYS_renameat2: case SYS_linkat:
        *count = 2; positions[0][0] = 0; positions[0][1] = 1; positions[1][0] = 2; positions[1][1] = 3;
        return nr == SYS_linkat ? SG_NAME_LINK : SG_NAME_RENAME;
    case SYS_mkdir: case SYS_mknod: case SYS_open:  // open: only O_CREAT | O_EXCL is sent
        *count = 1; positions[0][0] = -1; positions[0][1] = 0;
        return SG_NAME_MAKE;
    case SYS_mkdirat: case SYS_mknodat: case SYS_openat: case SG_OPENAT2:  // openat2: see exclusive_openat2
        *count = 1; positions[0][0] = 0; positions[0][1] = 1;
        return SG_NAME_MAKE;
    // symlink(target, name): only the new name is an access; the target is a string that nothing
    // resolves until the link is followed (and then the open trips on what it reaches).
    case SYS_symlink:
        *count = 1; positions[0][0] = -1; positions[0][1] = 1;
        return SG_NAME_MAKE;
    case SYS_symlinkat:
        *count = 1; positions[0][0] = 1; positions[0][1] = 2;
        return SG_NAME_MAKE;
    case SYS_mount:  // mount(source, target, …): the target (the source of a bind is an access too)
        *count = 2; positions[0][0] = -1; positions[0][1] = 1; positions[1][0] = -1; positions[1][1] = 0;
        return SG_NAME_MOUNT;
    case SYS_umount2: case SG_I386_OLD_UMOUNT:
        *count = 1; positions[0][0] = -1; positions[0][1] = 0;
        return SG_NAME_UNMOUNT;
    case SG_OPEN_TREE: case SG_FSPICK: case SG_MOUNT_SETATTR:
        *count = 1; positions[0][0] = 0; positions[0][1] = 1;
        return SG_NAME_MOUNT;
    case SG_MOVE_MOUNT:  // move_mount(from_dfd, from_path, to_dfd, to_path, flags)
        *count = 2; positions[0][0] = 0; positions[0][1] = 1; positions[1][0] = 2; positions[1][1] = 3;
        return SG_NAME_MOUNT;
    }
#endif
    (void)arch;
    (void)nr;
    *count = 0;
    return SG_NAME_DELETE;
}

/// Reads the NUL-terminated string at `address` of process `pid` into `buffer`; 0 or errno.
static int read_string(pid_t pid, uint64_t address, char *buffer, size_t size) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    // Page by page: a string near the end of a mapping must not make the read fail as a whole.
    size_t got = 0;
    int error = ENAMETOOLONG;
    while (got < size - 1) {
        size_t page_left = 4096 - (size_t)((address + got) % 4096);
        size_t want = page_left < size - 1 - got ? page_left : size - 1 - got;
        ssize_t count = pread(fd, buffer + got, want, (off_t)(address + got));
        if (count <= 0) { error = count < 0 ? errno : EFAULT; break; }
        if (memchr(buffer + got, 0, (size_t)count)) { error = 0; break; }
        got += (size_t)count;
    }
    close(fd);
    buffer[size - 1] = 0;
    return error;
}

/// Stats `path` (absolute) inside the root directory `root`: symbolic links met on the way,
/// absolute ones too, and `..` resolve within it, as for the process whose root it is. The last
/// component is not followed. O_PATH: nothing is opened for inotify. 1, or 0 when not found.
static int stat_in_root(int root, const char *path, struct stat *info) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    int fd = (int)syscall(SYS_openat2, root, path, &how, sizeof how);
    if (fd < 0) return 0;
    int found = fstat(fd, info) == 0;
    close(fd);
    return found;
}

/// Stats `name` as process `pid` names it (absolute: from its root; else from its working
/// directory or `dirfd`), or the directory it would be in. Returns 1 (the name), 2 (its
/// directory: it does not exist yet) or 0. A relative name is looked up twice — through the
/// magic link to the directory (absolute symbolic links on the way would resolve in stepguard's
/// root, not the step's) and as the directory's path inside the process's root — and the first
/// that finds something wins. `resolved` gets the name as an absolute path when it can be told.
static int look_up(pid_t pid, int dirfd, const char *name, struct stat *info, char resolved[SG_NAME_MAX]) {
    char root_path[64];
    snprintf(root_path, sizeof root_path, "/proc/%d/root", (int)pid);
    int root = open(root_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) return 0;
    char base[SG_NAME_MAX];
    base[0] = 0;
    snprintf(resolved, SG_NAME_MAX, "%s", name);
    // The step's /proc/self names the step; stepguard cannot walk it (it is not in the step's PID
    // namespace), so it walks its own /proc/PID instead.
    const char *self = strncmp(name, "/proc/self/", 11) == 0 ? name + 11
        : strncmp(name, "/proc/thread-self/", 18) == 0 ? name + 18 : NULL;
    if (self) {
        char direct[SG_NAME_MAX + 64];
        if (name[6] == 's') snprintf(direct, sizeof direct, "/proc/%d/%s", (int)pid, self);
        else snprintf(direct, sizeof direct, "/proc/%d/task/%d/%s", (int)pid, (int)pid, self);
        if (fstatat(AT_FDCWD, direct, info, AT_SYMLINK_NOFOLLOW) == 0) { close(root); return 1; }
    }
    if (name[0] != '/') {
        char link[64];
        if (dirfd == AT_FDCWD) snprintf(link, sizeof link, "/proc/%d/cwd", (int)pid);
        else snprintf(link, sizeof link, "/proc/%d/fd/%d", (int)pid, dirfd);
        ssize_t length = readlink(link, base, sizeof base - 1);
        base[length > 0 ? length : 0] = 0;
        if (base[0] == '/') snprintf(resolved, SG_NAME_MAX, name[0] ? "%s/%s" : "%s", base, name);
        char direct[SG_NAME_MAX + 64];
        snprintf(direct, sizeof direct, name[0] ? "%s/%s" : "%s", link, name);  // "": AT_EMPTY_PATH
        if (fstatat(AT_FDCWD, direct, info, AT_SYMLINK_NOFOLLOW) == 0) { close(root); return 1; }
        if (base[0] != '/') { close(root); return 0; }  // the directory has no path in the step's tree
    }
    char path[2 * SG_NAME_MAX + 2];
    snprintf(path, sizeof path, name[0] == '/' || !name[0] ? "%s%s" : "%s/%s", base, name);
    int found = stat_in_root(root, path, info);
    if (!found) {
        char *slash = strrchr(path, '/');
        if (slash && slash != path) {
            *slash = 0;
            struct open_how how;
            memset(&how, 0, sizeof how);
            how.flags = O_PATH | O_CLOEXEC;  // the directory: followed
            how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
            int fd = (int)syscall(SYS_openat2, root, path, &how, sizeof how);
            if (fd >= 0) {
                found = fstat(fd, info) == 0 ? 2 : 0;
                close(fd);
            }
        }
    }
    close(root);
    return found;
}

/// Whether openat2's `struct open_how` at `address` of process `pid` asks for an exclusive create
/// (O_CREAT | O_EXCL: onto a hidden file it fails with EEXIST before anything is opened, so
/// inotify sees nothing); any other openat2 opens, and inotify sees that. 0 when unreadable.
static int exclusive_openat2(pid_t pid, uint64_t address) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    uint64_t flags = 0;  // open_how.flags, its first field
    int read_all = pread(fd, &flags, sizeof flags, (off_t)address) == (ssize_t)sizeof flags;
    close(fd);
    return read_all && (flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL);
}

int sg_names_next(int listener, sg_name_call *call) {
    struct seccomp_notif notification;
    memset(&notification, 0, sizeof notification);
    memset(call, 0, sizeof *call);
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &notification) != 0) return errno;
    call->id = notification.id;
    call->pid = (pid_t)notification.pid;
    int positions[2][2];
    call->operation = classify(notification.data.arch, notification.data.nr, positions, &call->count);
#if defined(__x86_64__)
    if ((notification.data.nr & ~__X32_SYSCALL_BIT) == SG_OPENAT2 && !exclusive_openat2(call->pid, notification.data.args[2])) call->count = 0;
#endif
    for (int i = 0; i < call->count; i++) {
        char name[SG_NAME_MAX];
        call->found[i] = 0;
        if (read_string(call->pid, notification.data.args[positions[i][1]], name, sizeof name) != 0) continue;
        int dirfd = positions[i][0] < 0 ? AT_FDCWD : (int)notification.data.args[positions[i][0]];
        // Looked up in the step's own mount namespace, from its root, its working directory or
        // the directory descriptor it named, without following a last symbolic link (these calls
        // act on the name itself).
        struct stat info;
        call->found[i] = look_up(call->pid, dirfd, name, &info, call->paths[i]);
        if (!call->found[i]) continue;
        call->device[i] = (uint64_t)info.st_dev;
        call->inode[i] = (uint64_t)info.st_ino;
    }
    // The process may have gone (and its pid been reused) while its memory was read.
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &call->id) != 0) call->count = 0;
    return 0;
}

int sg_names_continue(int listener, uint64_t id) {
    struct seccomp_notif_resp response;
    memset(&response, 0, sizeof response);
    response.id = id;
    response.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    return ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &response) == 0 ? 0 : errno;
}
