#ifndef CSANDBOX_H
#define CSANDBOX_H
#include <stdint.h>
#include <sys/inotify.h>
#include <sys/types.h>

/// What a tripwire watches for (inotify masks), and the event bits stepguard reads back.
enum {
    /// A hidden file (a read-only bind mount): opening it. Its attributes cannot change (read-only
    /// mount) and the empty file behind it is unlinked by stepguard once mounted, which must not trip.
    SG_TRIPWIRE_HIDDEN_FILE = IN_OPEN,
    /// A hidden file covered with a writable empty file of a private tmpfs (`writable_covers`): opening
    /// it for reading or writing (a read-only cover would refuse a write-open with EROFS before
    /// inotify sees it), writing or truncating it, changing its attributes.
    SG_TRIPWIRE_COVER_FILE = IN_OPEN | IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB,
    /// A decoy file in a hidden directory: opening it, writing or truncating it, or changing,
    /// removing or renaming it.
    SG_TRIPWIRE_DECOY_FILE = IN_OPEN | IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF,
    /// A hidden directory or a decoy directory: listing it (opening it), or creating, removing or
    /// renaming an entry in it, or changing its attributes.
    SG_TRIPWIRE_DIRECTORY = IN_OPEN | IN_ATTRIB | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF,
    SG_INOTIFY_OPEN = IN_OPEN,
    SG_INOTIFY_MODIFY = IN_MODIFY,
    SG_INOTIFY_CLOSE_WRITE = IN_CLOSE_WRITE,
    SG_INOTIFY_ATTRIB = IN_ATTRIB,
    SG_INOTIFY_CREATE = IN_CREATE,
    SG_INOTIFY_DELETE = IN_DELETE,
    SG_INOTIFY_MOVED_FROM = IN_MOVED_FROM,
    SG_INOTIFY_MOVED_TO = IN_MOVED_TO,
    SG_INOTIFY_DELETE_SELF = IN_DELETE_SELF,
    SG_INOTIFY_MOVE_SELF = IN_MOVE_SELF,
    SG_INOTIFY_OVERFLOW = IN_Q_OVERFLOW,
};

/// What a call sent by the names filter (sg_names_listen) does to its names: MAKE is mkdir,
/// mknod or symlink (the new name), MOUNT any call that mounts on, unmounts, moves, clones or
/// reconfigures the mount at a name (mount, umount, umount2, move_mount, open_tree, fspick,
/// mount_setattr).
enum { SG_NAME_DELETE = 0, SG_NAME_RENAME = 1, SG_NAME_LINK = 2, SG_NAME_MAKE = 3, SG_NAME_MOUNT = 4, SG_NAME_UNMOUNT = 5 };
enum { SG_NAME_MAX = 4096 };

/// One call of the step that removes, renames, links, makes or mounts at a name, as sg_names_next read it: its
/// names (`count` of them; absolute when the directory a relative one is in could be told) and,
/// for each, the device and inode it names in
/// the step's mount namespace (`found` 1), or that of the directory it would be in when it does
/// not exist (`found` 2), or neither (`found` 0).
typedef struct {
    uint64_t id;
    pid_t pid;
    int operation;
    int count;
    int found[2];
    uint64_t device[2];
    uint64_t inode[2];
    char paths[2][SG_NAME_MAX];
} sg_name_call;

/// Installs, in the calling process and its future children, a seccomp filter that sends every
/// unlink, rmdir, rename, link, mkdir, mknod, symlink and mount-table call (see SG_NAME_MOUNT;
/// any of their forms, x86-64, x32 and i386) to a listener, and refuses io_uring (ENOSYS: its
/// requests would make those calls unseen),
/// and returns the listener (close-on-exec), or -1 with errno (ENOSYS where not x86-64).
int sg_names_listen(void);
/// Receives the next call from `listener` and reads its names; 0 or errno. Every call received
/// must be answered with sg_names_continue.
int sg_names_next(int listener, sg_name_call *call);
/// Lets call `id` go ahead as the step made it; 0 or errno.
int sg_names_continue(int listener, uint64_t id);

/// Where setting up transparent capture inside the step's network namespace failed.
typedef enum {
    SG_CAPTURE_NONE = 0,
    /// Adding the `local` default route (rtnetlink).
    SG_CAPTURE_ROUTE,
    /// Adding the nf_tables redirect (nfnetlink).
    SG_CAPTURE_RULES,
    /// Making the sockets stepguard serves (DNS, raw UDP, the IPv6 proxy listener).
    SG_CAPTURE_SOCKETS_STAGE,
    /// Covering /etc/resolv.conf.
    SG_CAPTURE_RESOLV_CONF,
} sg_capture_stage;

/// The sockets made inside a captured namespace, by index in sg_spawn_result.capture_fds.
enum {
    /// TCP, listening on 127.0.0.1 and [::1] at SG_CAPTURE_PORT: the redirected connections.
    SG_CAPTURE_LISTENER4 = 0,
    SG_CAPTURE_LISTENER6,
    /// UDP bound to 0.0.0.0:53 and [::]:53: every DNS query of the step, whatever server it names.
    SG_CAPTURE_DNS_UDP4,
    SG_CAPTURE_DNS_UDP6,
    /// TCP listening on the resolver's address (SG_CAPTURE_RESOLVER):53.
    SG_CAPTURE_DNS_TCP,
    /// Raw UDP sockets: a copy of every datagram the step sends (to tell what was dropped).
    SG_CAPTURE_RAW_UDP4,
    SG_CAPTURE_RAW_UDP6,
    SG_CAPTURE_SOCKETS,
};

/// Where captured connections are redirected inside the namespace: a privileged port, which the
/// step (whose capabilities belong to a nested user namespace) cannot bind itself.
#define SG_CAPTURE_PORT 1023

/// The resolver address written to the step's /etc/resolv.conf: 127.0.0.53 (host byte order).
#define SG_CAPTURE_RESOLVER 0x7f000035u

/// How sg_spawn prepares the child between fork and exec.
typedef struct {
    /// Give the child the controlling terminal (stdin is a TTY and we are in the foreground).
    int take_terminal;
    /// Run the child in new user, network and mount namespaces (uid/gid mapped to themselves,
    /// only loopback up).
    int isolate;
    /// With `isolate`: listen on 127.0.0.1:proxy_port inside the namespace and hand the listening
    /// socket back to the parent (0: no listener).
    uint16_t proxy_port;
    /// With `isolate` and `proxy_port`: redirect every TCP connection to a non-loopback address to
    /// SG_CAPTURE_PORT, make every address local, cover /etc/resolv.conf with `resolv_conf`, and hand
    /// over the sockets of SG_CAPTURE_SOCKETS.
    int capture;
    /// With `capture`: a file bind-mounted over /etc/resolv.conf (when that exists), or NULL.
    const char *resolv_conf;
    /// With `isolate`: NULL-terminated lists of directories to cover with an empty tmpfs, and of
    /// files (or sockets) to cover with `empty_file`.
    const char *const *hide_directories;
    const char *const *hide_files;
    const char *empty_file;
    /// With `isolate`: one empty file per entry of `hide_files` to cover it with instead of
    /// `empty_file` (so that a tripwire on one hidden file is told apart from another), or NULL.
    const char *const *hide_file_sources;
    /// With `isolate`: a directory on which the child mounts a private tmpfs for writable covers, or
    /// NULL. Each `hide_files` entry whose `writable_covers` flag is 1 has its source (a path inside
    /// this directory) made there as an empty file (mode 0600), bind-mounted over the hidden file
    /// without being made read-only; then the tmpfs is detached from the directory (the covers keep
    /// it alive; nothing else reaches it). What the step writes to a cover stays in that tmpfs.
    const char *cover_directory;
    const int *writable_covers;
    /// With `isolate`: decoys made inside the hidden directories once they are covered, named like
    /// the real entries they stand for: NULL-terminated lists of directories (parents first) and of
    /// empty files (mode 0600), so that opening e.g. ~/.aws/credentials opens something.
    const char *const *decoy_directories;
    const char *const *decoy_files;
    /// With `isolate`: paths watched with inotify once hidden (`tripwire_count` of them, each with
    /// its `tripwire_masks` entry). The child writes each watch descriptor to `tripwire_watches`
    /// (memory of the caller: the child shares it) and sends the inotify descriptor to the parent,
    /// which reads it from sg_spawn_result.tripwire_fd. 0 paths: no inotify instance.
    const char *const *tripwire_paths;
    const uint32_t *tripwire_masks;
    int *tripwire_watches;
    int tripwire_count;
    /// With tripwires: the device and inode of each tripwire path once covered, as the step sees
    /// it (2 × tripwire_count, written by the child like `tripwire_watches`; 0, 0 when not found).
    uint64_t *tripwire_identities;
    /// RLIMIT_NPROC for the child, or 0 for no limit.
    long max_processes;
    /// An open `cgroup.procs` file the child joins (writes "0" to) before anything else, or -1.
    int cgroup_procs;
    /// Descriptors above stderr the step keeps (ascending, each > 2). Every other one is closed on
    /// exec: the step inherits none of stepguard's own, nor anything its parent left open.
    const int *keep_fds;
    int keep_fd_count;
    /// With `isolate`: how long the step's leftover processes get between SIGTERM and SIGKILL once
    /// its main process has ended (the namespace's init applies it), in milliseconds.
    long grace_milliseconds;
} sg_spawn_options;

/// Where a failed spawn stopped; reported with its errno.
typedef enum {
    SG_STAGE_NONE = 0,
    SG_STAGE_FORK,
    SG_STAGE_PROCESS_GROUP,
    SG_STAGE_DEATH_SIGNAL,
    SG_STAGE_USER_NAMESPACE,
    SG_STAGE_ID_MAP,
    SG_STAGE_LOOPBACK,
    SG_STAGE_LISTENER,
    SG_STAGE_MOUNT_PRIVATE,
    SG_STAGE_HIDE,
    SG_STAGE_NO_NEW_PRIVS,
    SG_STAGE_LIMITS,
    SG_STAGE_DESCRIPTORS,
    SG_STAGE_EXEC,
    SG_STAGE_PROC,
    SG_STAGE_LOCK,
    SG_STAGE_DECOY,
    SG_STAGE_TRIPWIRE,
    SG_STAGE_KERNEL_KNOBS,
} sg_stage;

/// The outcome of sg_spawn: on success `error` is 0, `pid` is the process to wait for, `group` the
/// step's process group and `listener` the socket listening inside its namespace (or -1). An
/// isolated step runs under an init of stepguard's (pid 1 of its PID namespace): `pid` is that init,
/// whose end means the whole namespace has ended; `status_fd` then yields the step's own wait status
/// (4 bytes, written by the init before it exits) and `lifeline_fd` must stay open while the step
/// may run (the init ends the namespace when it closes, e.g. when stepguard dies). Both are -1
/// without isolation. `proc_error` is 0 when the step has its own /proc, else the errno of
/// mounting it (the step then sees the /proc stepguard sees). On failure `stage` says where and
/// `error` is the errno; `failed_path` indexes the hide entry (directories first, then files)
/// that failed (for SG_STAGE_DECOY it indexes decoy_directories then decoy_files, for
/// SG_STAGE_TRIPWIRE tripwire_paths, for SG_STAGE_KERNEL_KNOBS sg_kernel_knob_path).
typedef struct {
    pid_t pid;
    pid_t group;
    int listener;
    int status_fd;
    int lifeline_fd;
    int proc_error;
    int error;
    sg_stage stage;
    int failed_path;
    /// The inotify instance watching `tripwire_paths` (with `isolate` and tripwires), else -1.
    int tripwire_fd;
    /// With `tripwire_fd`: the listener of sg_names_listen the step runs under, or -1 and in
    /// `names_error` why the filter could not be installed (the inotify watches work without it).
    int names_fd;
    int names_error;
    /// With `capture`: where setting it up failed (SG_CAPTURE_NONE: it is on) and the errno. A
    /// failed capture does not stop the step: clients that ignore the proxy variables then reach
    /// nothing, as without capture.
    sg_capture_stage capture_stage;
    int capture_error;
    /// With `capture` on: the sockets by SG_CAPTURE_* index (-1 for one that could not be made).
    int capture_fds[SG_CAPTURE_SOCKETS];
} sg_spawn_result;

/// Starts `path` (clone + exec, sharing memory until the exec) in a new process group, with default
/// signal dispositions, an empty signal mask, no_new_privs, and SIGKILL as its parent-death signal;
/// optionally isolated (see isolate in sg_spawn_options and sg_spawn_result).
///
/// It also makes the calling process non-dumpable (PR_SET_DUMPABLE 0) before the step can run, so
/// that a step of the same uid cannot ptrace stepguard or read its memory, environment or
/// descriptors through /proc: before the clone without isolation; with isolation once the child has
/// written its own uid map (which needs a dumpable process), the step then being in a PID namespace
/// where stepguard does not exist.
sg_spawn_result sg_spawn(const char *path, char *const argv[], char *const envp[], const sg_spawn_options *options);

/// Makes this process a child subreaper: orphaned descendants are re-parented to it.
int sg_set_child_subreaper(void);


/// Forwards SIGINT, SIGTERM, SIGHUP and SIGQUIT received by this process to process group
/// `group` from within the signal handler (async-signal-safe, no thread involved). With group 0
/// signals are held and delivered once a group is set. sg_forward_signals_stop restores the defaults.
void sg_forward_signals(pid_t group);
void sg_forward_signals_stop(void);
/// The path of the kernel knob an isolated step gets read-only at `index` (SG_STAGE_KERNEL_KNOBS's
/// failed_path), or NULL.
const char *sg_kernel_knob_path(int index);
/// The Landlock ABI version the kernel offers, or -errno (EOPNOTSUPP: disabled at boot; ENOSYS: absent).
int sg_landlock_abi(void);
/// 1 when `path` is on a memory file system (tmpfs or ramfs), 0 otherwise or when it cannot be told.
int sg_is_memory_filesystem(const char *path);
#endif
