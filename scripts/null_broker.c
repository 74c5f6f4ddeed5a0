/* A "null broker" for the ceiling of issue 23: speaks just enough of the Kafka protocol for a
 * producer and a consumer (ApiVersions v0-3, Metadata v1-8, Produce v3-8, Fetch v4-11, ListOffsets
 * v1-5, all non-flexible except ApiVersions v3's request), stores nothing, answers every Produce at
 * once with offset 0 and every Fetch at once with one fixed record batch (BATCH_RECORDS records of
 * RECORD_VALUE bytes, no key, valid CRC-32C) repeated up to the partition's byte limit, each copy's
 * base offset patched so that the partition reads as consecutive offsets from the one asked for.
 * ListOffsets answers offset 0 (nothing is stored; every offset can be fetched). What a client
 * reaches against it is the most this client and this machine can do.
 *
 *   cc -O2 -pthread -o null_broker scripts/null_broker.c && ./null_broker PORT [PARTITIONS]
 *
 * One thread per connection, blocking I/O. Every topic asked for exists with PARTITIONS
 * partitions (default 16) led by node 1 at 127.0.0.1:PORT. PORT 0 takes a free port; the
 * "listening on" line names it. Malformed input closes the connection.
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

#define BATCH_RECORDS 64
#define RECORD_VALUE 1024
static uint8_t *g_batch; /* the fixed batch served by Fetch, base offset 0 */
static size_t g_batch_len;

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
static void varint(buf_t *b, int64_t v) { /* zigzag, as record fields are encoded */
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (z >= 0x80) { i8(b, (int8_t)(z | 0x80)); z >>= 7; }
    i8(b, (int8_t)z);
}
static void put64(uint8_t *at, int64_t v) { for (int i = 7; i >= 0; i--) { at[i] = (uint8_t)v; v = (int64_t)((uint64_t)v >> 8); } }
static void put32(uint8_t *at, uint32_t v) { at[0] = v >> 24; at[1] = v >> 16; at[2] = v >> 8; at[3] = v; }

static uint32_t crc32c(const uint8_t *p, size_t n) { /* Castagnoli, reflected 0x82F63B78 */
    static uint32_t table[256];
    if (!table[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
            table[i] = c;
        }
    uint32_t c = 0xffffffffu;
    while (n--) c = table[(c ^ *p++) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

/* The record batch (magic 2) Fetch serves: BATCH_RECORDS records without key or headers. */
static void build_batch(void) {
    buf_t recs = {0}, one = {0};
    uint8_t value[RECORD_VALUE];
    memset(value, 'v', sizeof value);
    for (int i = 0; i < BATCH_RECORDS; i++) {
        one.len = 0;
        i8(&one, 0);          /* attributes */
        varint(&one, 0);      /* timestamp delta */
        varint(&one, i);      /* offset delta */
        varint(&one, -1);     /* key: null */
        varint(&one, RECORD_VALUE); put(&one, value, RECORD_VALUE);
        varint(&one, 0);      /* headers */
        varint(&recs, (int64_t)one.len); put(&recs, one.p, one.len);
    }
    buf_t b = {0};
    int64_t now = 1700000000000;
    i64(&b, 0);                                /* base offset (patched per answer) */
    i32(&b, (int32_t)(49 + recs.len));         /* batch length: the bytes after this field */
    i32(&b, 0);                                /* partition leader epoch */
    i8(&b, 2);                                 /* magic */
    i32(&b, 0);                                /* CRC-32C, below */
    i16(&b, 0);                                /* attributes: no compression, CreateTime */
    i32(&b, BATCH_RECORDS - 1);                /* last offset delta */
    i64(&b, now); i64(&b, now);                /* base and max timestamp */
    i64(&b, -1); i16(&b, -1); i32(&b, -1);     /* producer id, epoch, base sequence */
    i32(&b, BATCH_RECORDS);
    put(&b, recs.p, recs.len);
    put32(b.p + 17, crc32c(b.p + 21, b.len - 21));
    g_batch = b.p; g_batch_len = b.len;
    free(recs.p); free(one.p);
}

/* A reader over one request; any overrun sets bad. */
typedef struct { const uint8_t *p; size_t len, off; int bad; } rd_t;
static int need(rd_t *r, size_t n) { if (r->off + n > r->len) { r->bad = 1; return 0; } return 1; }
static int16_t r16(rd_t *r) { if (!need(r, 2)) return 0; int16_t v = (int16_t)((r->p[r->off] << 8) | r->p[r->off + 1]); r->off += 2; return v; }
static int8_t r8(rd_t *r) { if (!need(r, 1)) return 0; return (int8_t)r->p[r->off++]; }
static int32_t r32(rd_t *r) {
    if (!need(r, 4)) return 0;
    uint32_t v = ((uint32_t)r->p[r->off] << 24) | ((uint32_t)r->p[r->off + 1] << 16) | ((uint32_t)r->p[r->off + 2] << 8) | r->p[r->off + 3];
    r->off += 4; return (int32_t)v;
}
static int64_t r64(rd_t *r) { uint32_t hi = (uint32_t)r32(r), lo = (uint32_t)r32(r); return (int64_t)(((uint64_t)hi << 32) | lo); }
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
    static const int16_t apis[][3] = {{0, 3, 8}, {1, 4, 11}, {2, 1, 5}, {3, 1, 8}, {18, 0, 3}};
    const int n = (int)(sizeof apis / sizeof apis[0]);
    i16(o, 0);
    if (ver >= 3) {
        i8(o, (int8_t)(n + 1)); /* compact array: n + 1 */
        for (int i = 0; i < n; i++) { i16(o, apis[i][0]); i16(o, apis[i][1]); i16(o, apis[i][2]); i8(o, 0); }
        i32(o, 0); i8(o, 0);
    } else {
        i32(o, n);
        for (int i = 0; i < n; i++) { i16(o, apis[i][0]); i16(o, apis[i][1]); i16(o, apis[i][2]); }
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

/* Every partition asked for gets copies of the fixed batch from its fetch offset on, as many as
 * fit in its PartitionMaxBytes and what is left of MaxBytes (at least one in the first partition,
 * as Kafka returns at least one batch). Answered at once: there is always data. */
static int fetch(rd_t *r, buf_t *o, int16_t ver) {
    r32(r); r32(r); r32(r); /* replica id, max wait, min bytes */
    int64_t left = ver >= 3 ? r32(r) : INT32_MAX;
    if (ver >= 4) r8(r); /* isolation level */
    if (ver >= 7) { r32(r); r32(r); } /* session id, epoch: no sessions (id 0 in the answer) */
    int32_t topics = r32(r);
    if (r->bad || topics < 0 || topics > 100000) return -1;
    i32(o, 0); /* throttle */
    if (ver >= 7) { i16(o, 0); i32(o, 0); }
    i32(o, topics);
    int first = 1;
    for (int32_t t = 0; t < topics; t++) {
        int16_t len; const uint8_t *name = rstr(r, &len);
        int32_t parts = r32(r);
        if (r->bad || len < 0 || parts < 0 || parts > 100000) return -1;
        str(o, name, len);
        i32(o, parts);
        for (int32_t p = 0; p < parts; p++) {
            int32_t index = r32(r);
            if (ver >= 9) r32(r); /* current leader epoch */
            int64_t offset = r64(r);
            if (ver >= 5) r64(r); /* log start offset */
            int64_t pmax = r32(r);
            if (r->bad || offset < 0) return -1;
            int64_t room = pmax < left ? pmax : left;
            if (room < 0) room = 0;
            int64_t copies = room / (int64_t)g_batch_len;
            if (copies == 0 && first) copies = 1;
            first = 0;
            left -= copies * (int64_t)g_batch_len;
            int64_t end = offset + copies * BATCH_RECORDS;
            i32(o, index); i16(o, 0); i64(o, end); /* high watermark: the end of what is sent */
            if (ver >= 4) { i64(o, end); } /* last stable offset */
            if (ver >= 5) i64(o, 0); /* log start offset */
            if (ver >= 4) i32(o, -1); /* aborted transactions: null */
            if (ver >= 11) i32(o, -1); /* preferred read replica */
            i32(o, (int32_t)(copies * (int64_t)g_batch_len));
            for (int64_t c = 0; c < copies; c++) {
                size_t at = o->len;
                put(o, g_batch, g_batch_len);
                put64(o->p + at, offset + c * BATCH_RECORDS); /* base offset: not under the CRC */
            }
        }
    }
    if (ver >= 7) { /* forgotten topics */
        int32_t n = r32(r);
        if (r->bad || n < 0 || n > 100000) return -1;
        for (int32_t t = 0; t < n; t++) {
            int16_t len; rstr(r, &len);
            int32_t k = r32(r);
            if (r->bad || k < 0 || !need(r, (size_t)k * 4)) return -1;
            r->off += (size_t)k * 4;
        }
    }
    if (ver >= 11) { int16_t len; rstr(r, &len); } /* rack id */
    return r->bad ? -1 : 0;
}

/* Offset 0 for every partition and timestamp: nothing is stored, every offset can be fetched. */
static int list_offsets(rd_t *r, buf_t *o, int16_t ver) {
    r32(r); /* replica id */
    if (ver >= 2) r8(r); /* isolation level */
    int32_t topics = r32(r);
    if (r->bad || topics < 0 || topics > 100000) return -1;
    if (ver >= 2) i32(o, 0); /* throttle */
    i32(o, topics);
    for (int32_t t = 0; t < topics; t++) {
        int16_t len; const uint8_t *name = rstr(r, &len);
        int32_t parts = r32(r);
        if (r->bad || len < 0 || parts < 0 || parts > 100000) return -1;
        str(o, name, len);
        i32(o, parts);
        for (int32_t p = 0; p < parts; p++) {
            int32_t index = r32(r);
            if (ver >= 4) r32(r); /* current leader epoch */
            r64(r); /* timestamp */
            if (r->bad) return -1;
            i32(o, index); i16(o, 0); i64(o, -1); i64(o, 0);
            if (ver >= 4) i32(o, 0);
        }
    }
    return 0;
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
        else if (key == 1 && ver >= 4 && ver <= 11) { if (fetch(&r, &o, ver)) break; }
        else if (key == 2 && ver >= 1 && ver <= 5) { if (list_offsets(&r, &o, ver)) break; }
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
    if (g_port < 0 || g_port > 65535 || g_partitions <= 0 || g_partitions > 100000) {
        fprintf(stderr, "bad port or partition count\n"); return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    build_batch();
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 1024)) { perror("listen"); return 1; }
    socklen_t alen = sizeof a;
    if (getsockname(s, (struct sockaddr *)&a, &alen)) { perror("getsockname"); return 1; }
    g_port = ntohs(a.sin_port);
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
