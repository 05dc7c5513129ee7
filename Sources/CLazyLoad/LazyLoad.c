#include "CLazyLoad.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

int sg_lazy_load(const char *const sonames[], const char *package, const char *const names[], void *slots[],
                 size_t count, char *error, size_t error_size) {
    void *handle = NULL;
    const char *soname = NULL;
    const char *first_reason = NULL;
    char tried[256] = "";
    for (const char *const *candidate = sonames; *candidate && !handle; candidate++) {
        handle = dlopen(*candidate, RTLD_NOW | RTLD_LOCAL);
        if (handle) { soname = *candidate; break; }
        const char *reason = dlerror();
        if (!first_reason) first_reason = reason;
        if (!strstr(tried, *candidate)) {
            size_t used = strlen(tried);
            snprintf(tried + used, sizeof tried - used, "%s%s", used ? ", " : "", *candidate);
        }
    }
    if (handle == NULL) {
        snprintf(error, error_size, "cannot load %s (%s); install it with: apt-get install %s", tried,
                 first_reason ? first_reason : "not found", package);
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        slots[i] = dlsym(handle, names[i]);
        if (slots[i] == NULL) {
            snprintf(error, error_size, "%s has no symbol %s; install a version stepguard supports (%s)",
                     soname, names[i], package);
            dlclose(handle);
            return -1;
        }
    }
    return 0;
}
