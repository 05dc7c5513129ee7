/*
 * bench/egress/connload.c — a fast load client for the CONNECT and TLS cases of bench/egress.
 *
 * Every request opens a new TCP connection (like `wrk -H 'Connection: close'`):
 *   connect  [CONNECT TARGET through --proxy,] then GET / in plain HTTP
 *   tls      [CONNECT TARGET through --proxy,] then a full TLS handshake (no session resumption;
 *            the server certificate is verified against --cafile and the target's host name), then GET /
 * A request counts when its response is "HTTP/1.x 200" with its whole body (Content-Length, or up to
 * the server's close when there is none); the client then closes, it does not wait for the server to.
 * Prints one JSON line, the same shape as load.py: requests, seconds, rps, p50_ms, p99_ms, errors.
 *
 * Build: gcc -O2 -pthread -o connload connload.c -lssl -lcrypto   (run.sh does this)
 * Usage: connload --mode tls --target localhost:18443 [--proxy 127.0.0.1:PORT] --cafile ca.pem
 *                 [--threads 50] [--seconds 5]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *mode = "tls", *target = NULL, *proxy = NULL, *cafile = NULL;
static int threads = 50;
static double seconds = 5;
static char host[256];
static int target_port;
static struct sockaddr_in dial;
static SSL_CTX *ctx;
static double deadline;

struct result { double *lat; size_t n, cap; long errors; };

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int parse_hostport(const char *text, char *h, size_t hlen, int *port) {
    const char *colon = strrchr(text, ':');
    if (!colon || (size_t)(colon - text) >= hlen) return -1;
    memcpy(h, text, colon - text);
    h[colon - text] = 0;
    *port = atoi(colon + 1);
    return *port > 0 ? 0 : -1;
}

static int write_all(int fd, SSL *ssl, const char *buf, size_t len) {
    while (len > 0) {
        int n = ssl ? SSL_write(ssl, buf, (int)len) : (int)write(fd, buf, len);
        if (n <= 0) { if (!ssl && n < 0 && errno == EINTR) continue; return -1; }
        buf += n; len -= (size_t)n;
    }
    return 0;
}

/* Reads one response: the head, then Content-Length bytes of body (or until the peer closes when
 * there is none), like an HTTP client that does not wait for the server to close. Returns 0 for a 200. */
static int read_response(int fd, SSL *ssl) {
    char buf[16384];
    size_t have = 0;
    long head_end = -1, length = -1;
    for (;;) {
        if (head_end >= 0 && length >= 0 && have >= (size_t)head_end + (size_t)length) break;
        if (have == sizeof buf) { if (head_end < 0) return -1; have = (size_t)head_end; length -= (long)(sizeof buf - (size_t)head_end); if (length < 0) break; }
        int n = ssl ? SSL_read(ssl, buf + have, (int)(sizeof buf - have)) : (int)read(fd, buf + have, sizeof buf - have);
        if (n < 0 && !ssl && errno == EINTR) continue;
        if (n <= 0) { if (head_end >= 0 && length < 0) break; return -1; }
        have += (size_t)n;
        if (head_end < 0) {
            char *end = memmem(buf, have, "\r\n\r\n", 4);
            if (!end) continue;
            head_end = end - buf + 4;
            if (head_end < 12 || (memcmp(buf, "HTTP/1.1 200", 12) && memcmp(buf, "HTTP/1.0 200", 12))) return -1;
            for (char *line = memchr(buf, '\n', (size_t)head_end); line && line < end; line = memchr(line + 1, '\n', (size_t)(end - line))) {
                if (strncasecmp(line + 1, "content-length:", 15) == 0) { length = strtol(line + 16, NULL, 10); break; }
            }
        }
    }
    return 0;
}

/* Sends CONNECT and reads the proxy's response head byte by byte (nothing of the tunnel is consumed). */
static int proxy_connect(int fd) {
    char req[600];
    int len = snprintf(req, sizeof req, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target);
    if (write_all(fd, NULL, req, (size_t)len)) return -1;
    char head[4096];
    size_t n = 0;
    while (n < sizeof head) {
        ssize_t r = read(fd, head + n, 1);
        if (r <= 0) return -1;
        n++;
        if (n >= 4 && memcmp(head + n - 4, "\r\n\r\n", 4) == 0) break;
    }
    if (n < 12 || (memcmp(head, "HTTP/1.1 200", 12) && memcmp(head, "HTTP/1.0 200", 12))) return -1;
    return 0;
}

static int one_request(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int rc = -1;
    SSL *ssl = NULL;
    char req[600];
    int len = snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target);
    if (connect(fd, (struct sockaddr *)&dial, sizeof dial)) goto out;
    if (proxy && proxy_connect(fd)) goto out;
    if (strcmp(mode, "tls") == 0) {
        ssl = SSL_new(ctx);
        if (!ssl) goto out;
        SSL_set_fd(ssl, fd);
        SSL_set_tlsext_host_name(ssl, host);
        SSL_set1_host(ssl, host); /* the certificate must name the target host */
        if (SSL_connect(ssl) != 1) goto out;
    }
    if (write_all(fd, ssl, req, (size_t)len)) goto out;
    rc = read_response(fd, ssl);
out:
    if (ssl) { SSL_shutdown(ssl); SSL_free(ssl); }
    ERR_clear_error();
    close(fd);
    return rc;
}

static void *worker(void *arg) {
    struct result *r = arg;
    while (now() < deadline) {
        double t0 = now();
        if (one_request() == 0) {
            if (r->n == r->cap) {
                r->cap = r->cap ? r->cap * 2 : 4096;
                r->lat = realloc(r->lat, r->cap * sizeof(double));
            }
            r->lat[r->n++] = now() - t0;
        } else {
            r->errors++;
        }
    }
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--mode")) mode = argv[i + 1];
        else if (!strcmp(argv[i], "--target")) target = argv[i + 1];
        else if (!strcmp(argv[i], "--proxy")) proxy = argv[i + 1][0] ? argv[i + 1] : NULL;
        else if (!strcmp(argv[i], "--cafile")) cafile = argv[i + 1];
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
        else { fprintf(stderr, "unknown option %s\n", argv[i]); return 64; }
    }
    if (!target || parse_hostport(target, host, sizeof host, &target_port) ||
        (strcmp(mode, "tls") && strcmp(mode, "connect")) || (!strcmp(mode, "tls") && !cafile) || threads < 1) {
        fprintf(stderr, "usage: connload --mode tls|connect --target HOST:PORT [--proxy IP:PORT] [--cafile PEM] [--threads N] [--seconds S]\n");
        return 64;
    }
    char dial_host[256];
    int dial_port;
    if (proxy) {
        if (parse_hostport(proxy, dial_host, sizeof dial_host, &dial_port)) { fprintf(stderr, "bad --proxy\n"); return 64; }
    } else {
        snprintf(dial_host, sizeof dial_host, "%s", strcmp(host, "localhost") ? host : "127.0.0.1");
        dial_port = target_port;
    }
    dial.sin_family = AF_INET;
    dial.sin_port = htons((uint16_t)dial_port);
    if (inet_pton(AF_INET, dial_host, &dial.sin_addr) != 1) { fprintf(stderr, "the address to dial must be an IPv4 literal\n"); return 64; }

    if (!strcmp(mode, "tls")) {
        ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) { fprintf(stderr, "cannot load %s\n", cafile); return 66; }
    }

    pthread_t *ids = calloc((size_t)threads, sizeof *ids);
    struct result *results = calloc((size_t)threads, sizeof *results);
    deadline = now() + seconds;
    for (int i = 0; i < threads; i++) pthread_create(&ids[i], NULL, worker, &results[i]);
    size_t total = 0;
    long errors = 0;
    for (int i = 0; i < threads; i++) { pthread_join(ids[i], NULL); total += results[i].n; errors += results[i].errors; }
    double *all = malloc((total ? total : 1) * sizeof(double));
    size_t k = 0;
    for (int i = 0; i < threads; i++) { memcpy(all + k, results[i].lat, results[i].n * sizeof(double)); k += results[i].n; }
    qsort(all, total, sizeof(double), cmp);
    if (total) {
        printf("{\"requests\": %zu, \"seconds\": %g, \"rps\": %.1f, \"p50_ms\": %.2f, \"p99_ms\": %.2f, \"errors\": %ld}\n", total, seconds,
               total / seconds, all[(size_t)(0.5 * total)] * 1000, all[(size_t)(0.99 * total) < total ? (size_t)(0.99 * total) : total - 1] * 1000, errors);
    } else {
        printf("{\"requests\": 0, \"seconds\": %g, \"rps\": 0.0, \"p50_ms\": null, \"p99_ms\": null, \"errors\": %ld}\n", seconds, errors);
    }
    return 0;
}
