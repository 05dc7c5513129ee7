#include <git2.h>

// git_libgit2_opts is variadic, which Swift cannot call; this typed wrapper can.
static inline int sg_git_opts_int(int option, int value) {
    return git_libgit2_opts(option, value);
}
