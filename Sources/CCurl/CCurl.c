// Forwards the libcurl functions stepguard uses to the library opened at run time.
// Each forwarder has the prototype <curl/curl.h> declares, so the compiler checks every signature.
#include "CCurl.h"

#include "CLazyLoad.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

// F(return type, name, parameters, arguments) for functions that return a value; V(...) for void.
// curl_easy_setopt and curl_easy_getinfo are variadic: only the typed wrappers below call them.
#define SG_CURL_FUNCTIONS(F, V) \
    F(CURLcode, curl_global_init, (long flags), (flags)) \
    F(CURL *, curl_easy_init, (void), ()) \
    V(curl_easy_cleanup, (CURL *curl), (curl)) \
    F(CURLcode, curl_easy_perform, (CURL *curl), (curl)) \
    F(const char *, curl_easy_strerror, (CURLcode code), (code)) \
    F(struct curl_slist *, curl_slist_append, (struct curl_slist *list, const char *data), (list, data)) \
    V(curl_slist_free_all, (struct curl_slist *list), (list))

#define SG_INDEX(ret, name, params, args) sg_index_##name,
#define SG_INDEX_VOID(name, params, args) sg_index_##name,
enum {
    SG_CURL_FUNCTIONS(SG_INDEX, SG_INDEX_VOID)
    sg_index_curl_easy_setopt, sg_index_curl_easy_getinfo, sg_function_count
};

#define SG_NAME(ret, name, params, args) #name,
#define SG_NAME_VOID(name, params, args) #name,
static const char *const sg_names[sg_function_count] = {
    SG_CURL_FUNCTIONS(SG_NAME, SG_NAME_VOID) "curl_easy_setopt", "curl_easy_getinfo"};

static void *sg_slots[sg_function_count];
static char sg_error[512];
static int sg_status = -1;
static pthread_once_t sg_once = PTHREAD_ONCE_INIT;

static void sg_load_once(void) {
    sg_status = sg_lazy_load("libcurl.so.4", "libcurl4", sg_names, sg_slots, sg_function_count, sg_error,
                             sizeof sg_error);
}

int sg_curl_load(const char **error) {
    pthread_once(&sg_once, sg_load_once);
    if (sg_status != 0 && error != NULL) *error = sg_error;
    return sg_status;
}

// The callers check sg_curl_load first; reaching this means a code path skipped that check.
static void sg_require(void) {
    if (sg_curl_load(NULL) != 0) {
        fprintf(stderr, "stepguard: %s\n", sg_error);
        abort();
    }
}

#define SG_FORWARD(ret, name, params, args) \
    ret name params { sg_require(); return ((__typeof__(&name))sg_slots[sg_index_##name]) args; }
#define SG_FORWARD_VOID(name, params, args) \
    void name params { sg_require(); ((__typeof__(&name))sg_slots[sg_index_##name]) args; }
SG_CURL_FUNCTIONS(SG_FORWARD, SG_FORWARD_VOID)

#define SG_SETOPT ((__typeof__(&curl_easy_setopt))sg_slots[sg_index_curl_easy_setopt])
CURLcode sg_curl_setopt_long(CURL *curl, CURLoption option, long value) { sg_require(); return SG_SETOPT(curl, option, value); }
CURLcode sg_curl_setopt_string(CURL *curl, CURLoption option, const char *value) { sg_require(); return SG_SETOPT(curl, option, value); }
CURLcode sg_curl_setopt_pointer(CURL *curl, CURLoption option, void *value) { sg_require(); return SG_SETOPT(curl, option, value); }
CURLcode sg_curl_setopt_write_function(CURL *curl, sg_curl_write_callback callback) {
    sg_require();
    return SG_SETOPT(curl, CURLOPT_WRITEFUNCTION, callback);
}
CURLcode sg_curl_getinfo_long(CURL *curl, CURLINFO info, long *value) {
    sg_require();
    return ((__typeof__(&curl_easy_getinfo))sg_slots[sg_index_curl_easy_getinfo])(curl, info, value);
}
