#ifndef CSANDBOX_H
#define CSANDBOX_H
#include <sys/types.h>

/// How sg_spawn prepares the child between fork and exec.
typedef struct {
    /// Give the child the controlling terminal (stdin is a TTY and we are in the foreground).
    int take_terminal;
} sg_spawn_options;

/// Forks and execs `path` in a new process group, with default signal dispositions, an empty
/// signal mask, and SIGKILL as its parent-death signal. On success stores the pid and returns 0;
/// on failure returns the errno of the failed step (exec failures are reported through a pipe).
int sg_spawn(const char *path, char *const argv[], char *const envp[], const sg_spawn_options *options, pid_t *pid_out);

/// Makes this process a child subreaper: orphaned descendants are re-parented to it.
int sg_set_child_subreaper(void);

#endif
