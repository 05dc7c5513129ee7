#ifndef SG_CCURL_H
#define SG_CCURL_H

#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>

/// Loads libcurl on first use (it is opened with dlopen, not linked: libcurl pulls in GnuTLS,
/// Kerberos, LDAP… and loading them costs milliseconds on every start of `stepguard run`, which
/// needs libcurl only to fetch keys or tokens). Returns 0, or -1 and points `error` at a message.
/// The libcurl functions declared in <curl/curl.h> that stepguard calls are forwarded to the loaded
/// library; calling one when loading failed stops the process with the message.
int sg_curl_load(const char **error);

// libcurl's setopt/getinfo are variadic, which Swift cannot call; these typed wrappers can.
CURLcode sg_curl_setopt_long(CURL *curl, CURLoption option, long value);
CURLcode sg_curl_setopt_string(CURL *curl, CURLoption option, const char *value);
CURLcode sg_curl_setopt_pointer(CURL *curl, CURLoption option, void *value);
typedef size_t (*sg_curl_write_callback)(char *data, size_t size, size_t count, void *context);
CURLcode sg_curl_setopt_write_function(CURL *curl, sg_curl_write_callback callback);
CURLcode sg_curl_getinfo_long(CURL *curl, CURLINFO info, long *value);

#endif
