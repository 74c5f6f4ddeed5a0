/* A "null broker" for the ceiling of issue 23: speaks just enough of the Kafka protocol for a
 * producer (ApiVersions v0-3, Metadata v1-8, Produce v3-8, all non-flexible except ApiVersions v3's
 * request), stores nothing and answers every Produce at once with offset 0. What a client reaches
 * against it is the most this client and this machine can do.
 *
 *   cc -O2 -pthread -o null_broker scripts/null_broker.c && ./null_broker PORT [PARTITIONS]
 *
 * One thread per connection, blocking I/O. Every topic asked for exists with PARTITIONS
 * partitions (default 16) led by node 1 at 127.0.0.1:PORT. Malformed input closes the connection.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int g_port;
static int g_partitions = 16;

typedef struct { uint8_t *p; size_t len, cap; } buf_t;

static void put(buf_t *b, const void *d, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}
static void i8(buf_t *b, int8_t v) { put(b, &v, 1); }
static void i16(buf_t *b, int16_t v) { uint16_t x = htons((uint16_t)v); put(b, &x, 2); }
static void i32(buf_t *b, int32_t v) { uint32_t x = htonl((uint32_t)v); put(b, &x, 4); }
static void i64(buf_t *b, int64_t v) { i32(b, (int32_t)((uint64_t)v >> 32)); i32(b, (int32_t)(v & 0xffffffff)); }
static void str(buf_t *b, const uint8_t *s, int16_t n) { i16(b, n); if (n > 0) put(b, s, (size_t)n); }

/* A reader over one request; any overrun sets bad. */
typedef struct { const uint8_t *p; size_t len, off; int bad; } rd_t;
static int need(rd_t *r, size_t n) { if (r->off + n > r->len) { r->bad = 1; return 0; } return 1; }
static int16_t r16(rd_t *r) { if (!need(r, 2)) return 0; int16_t v = (int16_t)((r->p[r->off] << 8) | r->p[r->off + 1]); r->off += 2; return v; }
static int32_t r32(rd_t *r) {
    if (!need(r, 4)) return 0;
    uint32_t v = ((uint32_t)r->p[r->off] << 24) | ((uint32_t)r->p[r->off + 1] << 16) | ((uint32_t)r->p[r->off + 2] << 8) | r->p[r->off + 3];
    r->off += 4; return (int32_t)v;
}
/* A (nullable) string: pointer to its bytes and length (-1: null). */
static const uint8_t *rstr(rd_t *r, int16_t *n) {
    *n = r16(r);
    if (*n < 0) return NULL;
    if (!need(r, (size_t)*n)) return NULL;
    const uint8_t *s = r->p + r->off; r->off += (size_t)*n; return s;
}
static void skip_tags(rd_t *r) { /* an empty tagged-field section is one 0 byte */
    if (!need(r, 1)) return;
    uint8_t n = r->p[r->off++];
    if (n != 0) r->bad = 1;
}

static int read_full(int fd, void *d, size_t n) {
    uint8_t *p = d;
    while (n) { ssize_t k = read(fd, p, n); if (k <= 0) return -1; p += k; n -= (size_t)k; }
    return 0;
}
static int write_frame(int fd, buf_t *b) {
    uint32_t size = htonl((uint32_t)(b->len - 4));
    memcpy(b->p, &size, 4);
    size_t off = 0;
    while (off < b->len) { ssize_t k = write(fd, b->p + off, b->len - off); if (k <= 0) return -1; off += (size_t)k; }
    return 0;
}

static void api_versions(buf_t *o, int16_t ver) {
    static const int16_t apis[][3] = {{0, 3, 8}, {3, 1, 8}, {18, 0, 3}};
    i16(o, 0);
    if (ver >= 3) {
        i8(o, 4); /* compact array: n + 1 */
        for (int i = 0; i < 3; i++) { i16(o, apis[i][0]); i16(o, apis[i][1]); i16(o, apis[i][2]); i8(o, 0); }
        i32(o, 0); i8(o, 0);
    } else {
        i32(o, 3);
        for (int i = 0; i < 3; i++) { i16(o, apis[i][0]); i16(o, apis[i][1]); i16(o, apis[i][2]); }
        if (ver >= 1) i32(o, 0);
    }
}

static int metadata(rd_t *r, buf_t *o, int16_t ver) {
    int32_t n = r32(r);
    if (r->bad || n > 10000) return -1;
    if (ver >= 3) i32(o, 0); /* throttle */
    i32(o, 1); /* brokers */
    i32(o, 1); str(o, (const uint8_t *)"127.0.0.1", 9); i32(o, g_port); i16(o, -1); /* rack */
    if (ver >= 2) str(o, (const uint8_t *)"null-broker-cluster", 19);
    i32(o, 1); /* controller */
    i32(o, n < 0 ? 0 : n);
    for (int32_t t = 0; t < n; t++) {
        int16_t len; const uint8_t *name = rstr(r, &len);
        if (r->bad || len < 0) return -1;
        i16(o, 0); str(o, name, len); i8(o, 0);
        i32(o, g_partitions);
        for (int p = 0; p < g_partitions; p++) {
            i16(o, 0); i32(o, p); i32(o, 1);
            if (ver >= 7) i32(o, 0);
            i32(o, 1); i32(o, 1); i32(o, 1); i32(o, 1);
            if (ver >= 5) i32(o, 0);
        }
        if (ver >= 8) i32(o, INT32_MIN);
    }
    if (ver >= 8) i32(o, INT32_MIN);
    return 0;
}

/* Returns 1 if a response is due (acks != 0), 0 if not, -1 on bad input. */
static int produce(rd_t *r, buf_t *o, int16_t ver) {
    int16_t n;
    rstr(r, &n); /* transactional id */
    int16_t acks = r16(r);
    r32(r); /* timeout */
    int32_t topics = r32(r);
    if (r->bad || topics < 0 || topics > 100000) return -1;
    i32(o, topics);
    for (int32_t t = 0; t < topics; t++) {
        int16_t len; const uint8_t *name = rstr(r, &len);
        int32_t parts = r32(r);
        if (r->bad || len < 0 || parts < 0 || parts > 100000) return -1;
        str(o, name, len);
        i32(o, parts);
        for (int32_t p = 0; p < parts; p++) {
            int32_t index = r32(r);
            int32_t size = r32(r);
            if (r->bad || (size > 0 && !need(r, (size_t)size))) return -1;
            if (size > 0) r->off += (size_t)size;
            i32(o, index); i16(o, 0); i64(o, 0); i64(o, -1);
            if (ver >= 5) i64(o, 0);
            if (ver >= 8) { i32(o, 0); i16(o, -1); }
        }
    }
    i32(o, 0); /* throttle */
    return acks != 0;
}

static void *serve(void *arg) {
    int fd = (int)(intptr_t)arg;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    uint8_t *req = NULL; size_t cap = 0;
    buf_t o = {0};
    for (;;) {
        uint32_t size;
        if (read_full(fd, &size, 4)) break;
        size = ntohl(size);
        if (size < 8 || size > (256u << 20)) break;
        if (size > cap) { cap = size; req = realloc(req, cap); if (!req) break; }
        if (read_full(fd, req, size)) break;
        rd_t r = {req, size, 0, 0};
        int16_t key = r16(&r), ver = r16(&r);
        int32_t corr = r32(&r);
        int16_t n; rstr(&r, &n); /* client id */
        if (key == 18 && ver >= 3) skip_tags(&r);
        o.len = 0;
        i32(&o, 0); i32(&o, corr);
        int due = 1;
        if (key == 18 && ver >= 0 && ver <= 3) api_versions(&o, ver);
        else if (key == 3 && ver >= 1 && ver <= 8) { if (metadata(&r, &o, ver)) break; }
        else if (key == 0 && ver >= 3 && ver <= 8) { due = produce(&r, &o, ver); if (due < 0) break; }
        else if (key == 18) { api_versions(&o, 0); o.p[8] = 0; o.p[9] = 35; } /* UNSUPPORTED_VERSION, v0 */
        else break;
        if (r.bad) break;
        if (due && write_frame(fd, &o)) break;
    }
    free(req); free(o.p); close(fd);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s PORT [PARTITIONS]\n", argv[0]); return 2; }
    g_port = atoi(argv[1]);
    if (argc > 2) g_partitions = atoi(argv[2]);
    if (g_port <= 0 || g_port > 65535 || g_partitions <= 0 || g_partitions > 100000) {
        fprintf(stderr, "bad port or partition count\n"); return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 1024)) { perror("listen"); return 1; }
    printf("null broker listening on 127.0.0.1:%d\n", g_port);
    fflush(stdout);
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0) continue;
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&at, 256 << 10);
        if (pthread_create(&t, &at, serve, (void *)(intptr_t)c)) close(c);
        pthread_attr_destroy(&at);
    }
}
