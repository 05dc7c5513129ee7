#ifndef SG_CGIT2_H
#define SG_CGIT2_H

#include <git2.h>

/// Loads libgit2 on first use (it is opened with dlopen, not linked, so that commands that never
/// read a repository do not pay for loading it). Returns 0, or -1 and points `error` at a message.
/// Every libgit2 function declared in <git2.h> that stepguard calls is forwarded to the loaded
/// library; calling one when loading failed stops the process with the message.
int sg_git2_load(const char **error);

/// git_libgit2_opts is variadic, which Swift cannot call; this typed wrapper can.
int sg_git_opts_int(int option, int value);

#endif
