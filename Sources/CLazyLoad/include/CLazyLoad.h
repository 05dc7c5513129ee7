#ifndef SG_LAZY_LOAD_H
#define SG_LAZY_LOAD_H

#include <stddef.h>

/// Opens the first of the shared libraries `sonames` (NULL-terminated, tried in order; dlopen, local
/// scope) that exists and resolves `count` symbols, in order, into `slots`. Returns 0, or -1 with a
/// readable message in `error` (what failed and how to fix it).
/// Libraries only some commands need (libgit2 for `scan`, libcurl for JWKS and token fetches) are
/// loaded this way so that `stepguard run` does not pay for loading them and their dependencies.
int sg_lazy_load(const char *const sonames[], const char *package, const char *const names[], void *slots[],
                 size_t count, char *error, size_t error_size);

#endif
