// Forwards the libcurl functions stepguard uses to the library opened at run time.
// Each forwarder has the prototype <curl/curl.h> declares, so the compiler checks every signature.
#include "CCurl.h"

#include "CLazyLoad.h"

// F(return type, name, parameters, arguments) for functions that return a value; V(...) for void;
// N(name) for the variadic curl_easy_setopt and curl_easy_getinfo, called by the typed wrappers below.
#define SG_FUNCTIONS(F, V, N) \
    F(CURLcode, curl_global_init, (long flags), (flags)) \
    F(char *, curl_version, (void), ()) \
    F(CURL *, curl_easy_init, (void), ()) \
    V(curl_easy_cleanup, (CURL *curl), (curl)) \
    F(CURLcode, curl_easy_perform, (CURL *curl), (curl)) \
    F(const char *, curl_easy_strerror, (CURLcode code), (code)) \
    F(struct curl_slist *, curl_slist_append, (struct curl_slist *list, const char *data), (list, data)) \
    V(curl_slist_free_all, (struct curl_slist *list), (list)) \
    N(curl_easy_setopt) \
    N(curl_easy_getinfo)

#define SG_SONAMES "libcurl.so.4"
#define SG_PACKAGE "libcurl4"
#define SG_LOAD sg_curl_load
#include "lazy_library.def"

#define SG_SETOPT SG_SLOT(curl_easy_setopt)
CURLcode sg_curl_setopt_long(CURL *curl, CURLoption option, long value) { sg_require(); return SG_SETOPT(curl, option, value); }
CURLcode sg_curl_setopt_string(CURL *curl, CURLoption option, const char *value) { sg_require(); return SG_SETOPT(curl, option, value); }
CURLcode sg_curl_setopt_pointer(CURL *curl, CURLoption option, void *value) { sg_require(); return SG_SETOPT(curl, option, value); }
CURLcode sg_curl_setopt_write_function(CURL *curl, sg_curl_write_callback callback) {
    sg_require();
    return SG_SETOPT(curl, CURLOPT_WRITEFUNCTION, callback);
}
CURLcode sg_curl_getinfo_long(CURL *curl, CURLINFO info, long *value) {
    sg_require();
    return SG_SLOT(curl_easy_getinfo)(curl, info, value);
}
