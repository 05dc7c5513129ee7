#include "CLazyLoad.h"

#include <dlfcn.h>
#include <stdio.h>

int sg_lazy_load(const char *soname, const char *package, const char *const names[], void *slots[],
                 size_t count, char *error, size_t error_size) {
    void *handle = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        const char *reason = dlerror();
        snprintf(error, error_size, "cannot load %s (%s); install it with: apt-get install %s", soname,
                 reason ? reason : "not found", package);
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        slots[i] = dlsym(handle, names[i]);
        if (slots[i] == NULL) {
            snprintf(error, error_size, "%s has no symbol %s; install the version stepguard was built with (%s)",
                     soname, names[i], package);
            dlclose(handle);
            return -1;
        }
    }
    return 0;
}
