/*
 * loadgen: netd's load generator for the benchmarks (benchmarks/run.py) and their self-test.
 *
 * One thread, one epoll set, loopback only.  Every byte a server sends back is checked:
 *   - TCP echo (rr, connrate, bulk, idle pings): the client sends a keyed pattern, and the
 *     byte at stream offset X of connection K must be pat[(key(K) + X) % PATN].  A flipped,
 *     lost, duplicated or reordered byte, a byte from another connection, a connection
 *     closed early or an echo still missing when the run drains: each is an error.
 *   - wac (write-and-close: daytime, time, greeting): the server must send between
 *     --min and --max bytes (and end in --suffix, if given), then close.
 *   - udp: a datagram is an 8-byte sequence number then the keyed pattern; a reply must be
 *     a datagram that was sent and not yet answered, byte for byte.  A datagram with no reply
 *     within --udp-loss-ms is lost (reported, not an error); a reply after that is "late".
 * Latency percentiles are exact (every sample of the measured window is kept and sorted).
 * Output: one JSON object on stdout; exit status 0 when no error was counted, else 1.
 *
 * Build: make benchmarks/build/loadgen (gcc -O2).  Usage: loadgen --help.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PATN 65519u          /* pattern period (prime, so keys spread evenly) */
#define CHUNK 65536u         /* largest single write / read */
#define BULK_WINDOW 262144u  /* bulk: bytes sent but not yet echoed, per connection */
#define UDP_RING 4096u       /* udp: outstanding-datagram bookkeeping */

static unsigned char pat[PATN + CHUNK], buf[CHUNK];

/* ---- options --------------------------------------------------------------------- */
enum { RR, CONNRATE, WAC, BULK, UDP, IDLE };
static const char *modes[] = {"rr", "connrate", "wac", "bulk", "udp", "idle"};
static struct {
    int mode, port, conns, size, srcs, idle, conc, maxfail, window, lossms, min, max, sid;
    double duration, warmup, timeout, hold;
    const char *host, *suffix;
} opt = {RR, 0, 10, 64, 1, 1000, 64, 64, 32, 200, 1, 4096, 0,
         2.0, 0.5, 3.0, 0.5, "127.0.0.1", NULL};

/* ---- clock, window, samples -------------------------------------------------------- */
static uint64_t nowns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}
static uint64_t t_start, t_from, t_until; /* measured window [t_from, t_until) */
static int running = 1;                   /* new requests / connections may start */
static int measuring(uint64_t t) { return t >= t_from && t < t_until; }

static uint64_t *samples;
static size_t nsamples, capsamples;
static void sample(uint64_t ns) {
    if (nsamples == capsamples) {
        capsamples = capsamples ? 2 * capsamples : 65536;
        samples = realloc(samples, capsamples * sizeof *samples);
        if (!samples) { perror("realloc"); exit(2); }
    }
    samples[nsamples++] = ns;
}
static int by_value(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}
/* nearest rank: the smallest sample with at least p of all samples at or below it */
static double rank_us(double p) {
    if (!nsamples) return 0;
    size_t r = (size_t)(p * (double)nsamples);
    if ((double)r < p * (double)nsamples) r++;
    if (r < 1) r = 1;
    if (r > nsamples) r = nsamples;
    return samples[r - 1] / 1000.0;
}

/* ---- errors ------------------------------------------------------------------------- */
enum { E_MISMATCH, E_EXCESS, E_EOF, E_TIMEOUT, E_INCOMPLETE, E_SHORT, E_SUFFIX, E_UNEXPECTED, E_COUNT };
static const char *errname[E_COUNT] = {"mismatch", "excess", "early_eof", "timeout",
                                       "incomplete_at_end", "too_short", "bad_suffix", "unexpected"};
static long errs[E_COUNT], errnos[160];
static long errors_total(void) {
    long n = 0;
    for (int i = 0; i < E_COUNT; i++) n += errs[i];
    for (int i = 0; i < 160; i++) n += errnos[i];
    return n;
}
static void count_errno(int e) { errnos[(e > 0 && e < 160) ? e : 0]++; }

/* ---- connections ---------------------------------------------------------------------- */
enum { FREE, CONNECTING, OPEN, DONE };
typedef struct {
    int fd, state, events, pinging;
    uint32_t key;
    uint64_t sent, rcvd, goal;   /* bytes written, verified; rcvd target of the request */
    uint64_t t0, last;           /* request start, last progress */
    unsigned char tail[64];      /* wac: the last bytes received, for --suffix */
    size_t got;                  /* wac: bytes received */
} conn_t;
static conn_t *cs;
static int ep, nconns;
static uint32_t serial;
static long completed, attempted, established, failed, alive_after;
static uint64_t bytes_sent, bytes_verified, bytes_window;
static struct sockaddr_in dst;

static void set_events(conn_t *c, int ev) {
    if (c->events == ev) return;
    struct epoll_event e = {.events = (uint32_t)ev, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
    c->events = ev;
}
static void close_conn(conn_t *c, int state) {
    if (c->fd >= 0) close(c->fd); /* close() removes it from the epoll set */
    c->fd = -1;
    c->state = state;
}
static int open_conn(conn_t *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) { count_errno(errno); c->state = DONE; return -1; }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (opt.srcs > 1) { /* spread over 127.0.0.1..N: one source's ephemeral ports run out */
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000001u + (attempted % opt.srcs));
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        bind(c->fd, (struct sockaddr *)&src, sizeof src);
    }
    attempted++;
    c->key = (serial++ * 40503u) % PATN;
    c->sent = c->rcvd = c->goal = 0;
    c->got = 0;
    c->pinging = 0;
    c->t0 = c->last = nowns();
    c->state = CONNECTING;
    c->events = EPOLLOUT;
    struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e);
    if (connect(c->fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) {
        count_errno(errno);
        failed++;
        close_conn(c, DONE);
        return -1;
    }
    return 0;
}
static const unsigned char *expected(conn_t *c, uint64_t off) { return pat + (c->key + off) % PATN; }

/* write what the current request still owes; bulk keeps writing within its window */
static int pump(conn_t *c) {
    while (c->sent < c->goal || (opt.mode == BULK && running)) {
        uint64_t room = opt.mode == BULK ? BULK_WINDOW - (c->sent - c->rcvd) : c->goal - c->sent;
        if (!room) break;
        size_t n = room < CHUNK ? (size_t)room : CHUNK;
        ssize_t w = send(c->fd, expected(c, c->sent), n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN) { set_events(c, EPOLLIN | EPOLLOUT); return 0; }
            count_errno(errno);
            return -1;
        }
        c->sent += (uint64_t)w;
        bytes_sent += (uint64_t)w;
        if (opt.mode == BULK) c->goal = c->sent;
    }
    set_events(c, EPOLLIN);
    return 0;
}
static int request(conn_t *c, int size) {
    c->goal = c->sent + (uint64_t)size;
    c->t0 = c->last = nowns();
    return pump(c);
}

static void finished(conn_t *c, uint64_t t); /* a request (or a wac connection) is complete */

/* read and verify; -1: the connection is over (closed or failed) */
static int drain_socket(conn_t *c) {
    for (;;) {
        ssize_t n = recv(c->fd, buf, CHUNK, 0);
        if (n > 0) {
            c->last = nowns();
            if (opt.mode == WAC) {
                size_t keep = (size_t)n < sizeof c->tail ? (size_t)n : sizeof c->tail;
                size_t old = c->got < sizeof c->tail ? c->got : sizeof c->tail;
                if (old + keep > sizeof c->tail) { /* slide */
                    size_t drop = old + keep - sizeof c->tail;
                    memmove(c->tail, c->tail + drop, old - drop);
                    old -= drop;
                }
                memcpy(c->tail + old, buf + n - keep, keep);
                c->got += (size_t)n;
                bytes_verified += (uint64_t)n;
                if (c->got > (size_t)opt.max) { errs[E_EXCESS]++; failed++; close_conn(c, FREE); return -1; }
                continue;
            }
            if (c->rcvd + (uint64_t)n > c->sent) { errs[E_EXCESS]++; failed++; close_conn(c, DONE); return -1; }
            if (memcmp(buf, expected(c, c->rcvd), (size_t)n)) { errs[E_MISMATCH]++; failed++; close_conn(c, DONE); return -1; }
            c->rcvd += (uint64_t)n;
            bytes_verified += (uint64_t)n;
            if (opt.mode == BULK) {
                if (measuring(c->last)) bytes_window += (uint64_t)n;
                if (running && pump(c) < 0) { failed++; close_conn(c, DONE); return -1; }
            } else if (c->rcvd == c->goal && c->sent == c->goal) {
                finished(c, c->last);
                if (c->state != OPEN) return -1;
            }
            continue;
        }
        if (n == 0) {
            if (opt.mode == WAC) {
                size_t sl = opt.suffix ? strlen(opt.suffix) : 0;
                size_t have = c->got < sizeof c->tail ? c->got : sizeof c->tail;
                if (c->got < (size_t)opt.min) errs[E_SHORT]++, failed++;
                else if (sl && (have < sl || memcmp(c->tail + have - sl, opt.suffix, sl))) errs[E_SUFFIX]++, failed++;
                else finished(c, nowns());
                close_conn(c, FREE);
                return -1;
            }
            /* closed by the server: an error unless nothing was owed (bulk after the run) */
            if (c->rcvd < c->sent || opt.mode != BULK) { errs[E_EOF]++; failed++; }
            close_conn(c, DONE);
            return -1;
        }
        if (errno == EAGAIN) return 0;
        if (errno == EINTR) continue;
        count_errno(errno);
        failed++;
        close_conn(c, opt.mode == WAC || opt.mode == CONNRATE ? FREE : DONE);
        return -1;
    }
}

static void finished(conn_t *c, uint64_t t) {
    if (c->pinging) { /* a connection's first (or idle's last) ping came back */
        c->pinging = 0;
        if (opt.mode == IDLE && c->t0 >= t_from) alive_after++; else established++;
        set_events(c, EPOLLIN);
        return;
    }
    if (measuring(t)) { completed++; sample(t - c->t0); }
    if (opt.mode == RR) {
        if (running && request(c, opt.size) < 0) { failed++; close_conn(c, DONE); }
    } else { /* connrate, wac: one exchange per connection */
        close_conn(c, FREE);
    }
}

static void connected(conn_t *c) {
    int e = 0;
    socklen_t len = sizeof e;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &len);
    if (e) { count_errno(e); failed++; close_conn(c, opt.mode == RR || opt.mode == IDLE || opt.mode == BULK ? DONE : FREE); return; }
    c->state = OPEN;
    if (opt.mode == WAC) { set_events(c, EPOLLIN); return; }
    if (opt.mode == IDLE || opt.mode == RR) c->pinging = 1; /* first: a verified 8-byte ping */
    if (opt.mode == BULK) { c->goal = 0; if (pump(c) < 0) { failed++; close_conn(c, DONE); } return; }
    if (request(c, opt.mode == CONNRATE ? opt.size : 8) < 0) { failed++; close_conn(c, DONE); }
}

static void on_event(conn_t *c, uint32_t ev) {
    if (c->state == CONNECTING) {
        if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) connected(c);
        if (c->state != OPEN) return;
    }
    if (c->state != OPEN) return;
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        if (drain_socket(c) < 0) return;
    }
    if ((ev & EPOLLOUT) && c->state == OPEN && opt.mode != WAC) {
        if (pump(c) < 0) { failed++; close_conn(c, DONE); }
    }
}

/* a request outstanding for longer than --timeout is an error */
static void check_timeouts(uint64_t t) {
    uint64_t limit = (uint64_t)(opt.timeout * 1e9);
    for (int i = 0; i < nconns; i++) {
        conn_t *c = &cs[i];
        int owed = c->state == CONNECTING || (c->state == OPEN && (opt.mode == WAC || c->rcvd < c->goal || c->rcvd < c->sent));
        if (owed && t - c->last > limit) {
            errs[E_TIMEOUT]++;
            failed++;
            close_conn(c, opt.mode == CONNRATE || opt.mode == WAC ? FREE : DONE);
        }
    }
}
static int owing(void) {
    int n = 0;
    for (int i = 0; i < nconns; i++) {
        conn_t *c = &cs[i];
        if (c->state == CONNECTING || (c->state == OPEN && (opt.mode == WAC || c->rcvd < c->sent))) n++;
    }
    return n;
}

/* run the event loop until `until`, reopening free slots while `reopen` */
static void loop(uint64_t until, int reopen, int (*enough)(void)) {
    struct epoll_event evs[256];
    uint64_t next_check = 0;
    for (;;) {
        uint64_t t = nowns();
        if (t >= until || (enough && enough())) return;
        if (t >= next_check) { check_timeouts(t); next_check = t + 20000000ull; }
        if (reopen) {
            for (int i = 0; i < nconns; i++)
                if (cs[i].state == FREE) open_conn(&cs[i]);
        }
        int wait_ms = (int)((until - t) / 1000000ull);
        int n = epoll_wait(ep, evs, 256, wait_ms > 10 ? 10 : wait_ms);
        for (int i = 0; i < n; i++) on_event(evs[i].data.ptr, evs[i].events);
    }
}

/* ---- server memory (idle) ----------------------------------------------------------- */
/* sum over every process of session `sid` (the server and any children): RSS and PSS, KiB */
static void session_memory(long *rss, long *pss) {
    *rss = *pss = 0;
    DIR *d = opendir("/proc");
    struct dirent *de;
    char path[300], line[512];
    if (!d) return;
    while ((de = readdir(d))) {
        if (de->d_name[0] < '1' || de->d_name[0] > '9') continue;
        snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t n = fread(line, 1, sizeof line - 1, f);
        fclose(f);
        line[n] = 0;
        char *p = strrchr(line, ')');
        int session = 0;
        if (!p || sscanf(p + 2, "%*c %*d %*d %d", &session) != 1 || session != opt.sid) continue;
        snprintf(path, sizeof path, "/proc/%s/smaps_rollup", de->d_name);
        if (!(f = fopen(path, "r"))) continue;
        long v;
        while (fgets(line, sizeof line, f)) {
            if (sscanf(line, "Rss: %ld", &v) == 1) *rss += v;
            else if (sscanf(line, "Pss: %ld", &v) == 1) *pss += v;
        }
        fclose(f);
    }
    closedir(d);
}

/* ---- modes ------------------------------------------------------------------------------ */
static int none_owing(void) { return owing() == 0; }
static long idle_target;
static int idle_settled(void) {
    int connecting = 0;
    for (int i = 0; i < nconns; i++) connecting += cs[i].state == CONNECTING || cs[i].pinging;
    return connecting == 0 && (attempted >= idle_target || failed >= opt.maxfail);
}

static void alloc_conns(int n) {
    nconns = n;
    cs = calloc((size_t)n, sizeof *cs);
    if (!cs) { perror("calloc"); exit(2); }
    for (int i = 0; i < n; i++) cs[i].fd = -1, cs[i].state = FREE;
}

static void print_latency(void) {
    double sum = 0;
    qsort(samples, nsamples, sizeof *samples, by_value);
    for (size_t i = 0; i < nsamples; i++) sum += samples[i] / 1000.0;
    printf("\"lat_us\":{\"n\":%zu,\"mean\":%.1f,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f}",
           nsamples, nsamples ? sum / nsamples : 0, rank_us(.5), rank_us(.9), rank_us(.99), rank_us(.999),
           nsamples ? samples[nsamples - 1] / 1000.0 : 0);
}
static void print_errors(void) {
    printf("\"errors\":{\"total\":%ld", errors_total());
    for (int i = 0; i < E_COUNT; i++) if (errs[i]) printf(",\"%s\":%ld", errname[i], errs[i]);
    for (int i = 0; i < 160; i++) if (errnos[i]) printf(",\"%s\":%ld", i ? strerrorname_np(i) : "other", errnos[i]);
    printf("}");
}
static double cpu_pct(uint64_t wall) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double s = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    return 100.0 * s / (wall / 1e9);
}
static void print_head(void) {
    printf("{\"mode\":\"%s\",\"params\":{\"host\":\"%s\",\"port\":%d,\"conns\":%d,\"size\":%d,\"srcs\":%d,"
           "\"duration\":%g,\"warmup\":%g,\"timeout\":%g",
           modes[opt.mode], opt.host, opt.port, opt.conns, opt.size, opt.srcs, opt.duration, opt.warmup, opt.timeout);
    if (opt.mode == IDLE) printf(",\"idle\":%d,\"hold\":%g", opt.idle, opt.hold);
    if (opt.mode == UDP) printf(",\"window\":%d,\"loss_ms\":%d", opt.window, opt.lossms);
    if (opt.mode == WAC) printf(",\"min\":%d,\"max\":%d", opt.min, opt.max);
    printf("},\"results\":{");
}

static int run_tcp(void) {
    int conns = opt.mode == IDLE ? opt.idle : opt.conns;
    alloc_conns(conns);
    uint64_t t = nowns();
    long rss0 = 0, pss0 = 0, rss1 = 0, pss1 = 0;
    double setup_s = 0;
    if (opt.mode == IDLE) {
        if (opt.sid) session_memory(&rss0, &pss0);
        /* open --conc at a time, each verified by a ping; give up after --maxfail failures */
        idle_target = opt.idle;
        t_from = t_until = UINT64_MAX;
        struct epoll_event evs[256];
        int next = 0;
        while (!idle_settled()) {
            int inflight = 0;
            for (int i = 0; i < next; i++) inflight += cs[i].state == CONNECTING || cs[i].pinging;
            while (next < conns && inflight < opt.conc && failed < opt.maxfail) { open_conn(&cs[next++]); inflight++; }
            if (next >= conns || failed >= opt.maxfail) idle_target = attempted;
            int n = epoll_wait(ep, evs, 256, 10);
            for (int i = 0; i < n; i++) on_event(evs[i].data.ptr, evs[i].events);
            uint64_t now = nowns();
            check_timeouts(now);
            if (now - t > 120e9) break;
        }
        setup_s = (nowns() - t) / 1e9;
        uint64_t hold_until = nowns() + (uint64_t)(opt.hold * 1e9);
        running = 0;
        loop(hold_until, 0, NULL); /* hold: a server that drops idle connections shows here */
        if (opt.sid) session_memory(&rss1, &pss1);
        t_from = nowns(); /* pings from here on count as alive_after */
        for (int i = 0; i < conns; i++)
            if (cs[i].state == OPEN) { cs[i].pinging = 1; request(&cs[i], 8); }
        loop(nowns() + (uint64_t)(opt.timeout * 1e9), 0, none_owing);
        errs[E_INCOMPLETE] += owing();
        uint64_t wall = nowns() - t;
        long n = established ? established : 1;
        print_head();
        printf("\"attempted\":%ld,\"established\":%ld,\"failed\":%ld,\"alive_after\":%ld,\"setup_s\":%.2f,",
               attempted, established, failed, alive_after, setup_s);
        if (opt.sid)
            printf("\"server_rss_before_kb\":%ld,\"server_rss_kb\":%ld,\"server_pss_before_kb\":%ld,\"server_pss_kb\":%ld,"
                   "\"kib_per_conn_rss\":%.3f,\"kib_per_conn_pss\":%.3f,",
                   rss0, rss1, pss0, pss1, (double)(rss1 - rss0) / n, (double)(pss1 - pss0) / n);
        printf("\"client_cpu_pct\":%.1f,", cpu_pct(wall));
        print_errors();
        int ok = errors_total() == 0 && established == opt.idle && alive_after == established;
        printf("},\"ok\":%s}\n", ok ? "true" : "false");
        return ok ? 0 : 1;
    }
    if (opt.mode == RR || opt.mode == BULK) { /* open every connection first (verified ping for rr) */
        int next = 0;
        struct epoll_event evs[256];
        t_from = t_until = UINT64_MAX;
        while (nowns() - t < (uint64_t)(opt.timeout * 1e9) + 1000000000ull) {
            int busy = 0;
            for (int i = 0; i < next; i++) busy += cs[i].state == CONNECTING || (cs[i].state == OPEN && cs[i].pinging);
            while (next < conns && busy < 32) { open_conn(&cs[next++]); busy++; }
            if (next == conns && busy == 0) break;
            int n = epoll_wait(ep, evs, 256, 10);
            for (int i = 0; i < n; i++) on_event(evs[i].data.ptr, evs[i].events);
            check_timeouts(nowns());
        }
        setup_s = (nowns() - t) / 1e9;
        if (opt.mode == BULK) for (int i = 0; i < conns; i++) established += cs[i].state == OPEN;
    }
    t = nowns();
    t_from = t + (uint64_t)(opt.warmup * 1e9);
    t_until = t_from + (uint64_t)(opt.duration * 1e9);
    if (opt.mode == RR)
        for (int i = 0; i < conns; i++)
            if (cs[i].state == OPEN && request(&cs[i], opt.size) < 0) { failed++; close_conn(&cs[i], DONE); }
    if (opt.mode == BULK)
        for (int i = 0; i < conns; i++)
            if (cs[i].state == OPEN && pump(&cs[i]) < 0) { failed++; close_conn(&cs[i], DONE); }
    loop(t_until, opt.mode == CONNRATE || opt.mode == WAC, NULL);
    running = 0;
    loop(nowns() + 2000000000ull, 0, none_owing); /* drain: every byte sent must come back */
    errs[E_INCOMPLETE] += owing();
    uint64_t wall = nowns() - t_start;
    double rate = opt.mode == BULK ? bytes_window / 1e6 / opt.duration : completed / opt.duration;
    print_head();
    printf("\"rate\":%.1f,\"unit\":\"%s\",\"completed\":%ld,\"attempted\":%ld,\"failed\":%ld,", rate,
           opt.mode == BULK ? "MB/s" : opt.mode == RR ? "req/s" : "conn/s", completed, attempted, failed);
    if (opt.mode == RR || opt.mode == BULK) printf("\"established\":%ld,\"setup_s\":%.2f,", established, setup_s);
    printf("\"bytes_sent\":%llu,\"bytes_verified\":%llu,\"client_cpu_pct\":%.1f,",
           (unsigned long long)bytes_sent, (unsigned long long)bytes_verified, cpu_pct(wall));
    print_latency();
    printf(",");
    if (opt.mode == RR || opt.mode == BULK) {
        long stalled = 0;
        if (opt.mode == RR && established < conns) stalled = conns - established;
        printf("\"unestablished\":%ld,", stalled);
    }
    print_errors();
    int ok = errors_total() == 0 && completed + (opt.mode == BULK ? (long)(bytes_window > 0) : 0) > 0 &&
             (opt.mode != RR || established == conns);
    printf("},\"ok\":%s}\n", ok ? "true" : "false");
    return ok ? 0 : 1;
}

/* ---- udp ---------------------------------------------------------------------------------- */
static struct { uint64_t seq, t; int state; } ring[UDP_RING]; /* state: 0 free, 1 out, 2 lost */

static int run_udp(void) {
    if (opt.size < 8) opt.size = 8;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0) { perror("udp"); return 2; }
    struct epoll_event e = {.events = EPOLLIN};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
    uint64_t next = 0, out = 0, sent = 0, replies = 0, lost = 0, late = 0, unexpected = 0;
    unsigned char dgram[65536];
    uint64_t t = nowns(), lossns = (uint64_t)opt.lossms * 1000000ull;
    t_from = t + (uint64_t)(opt.warmup * 1e9);
    t_until = t_from + (uint64_t)(opt.duration * 1e9);
    uint64_t stop_at = t_until, end = t_until + 2000000000ull, next_check = 0;
    for (;;) {
        uint64_t now = nowns();
        if (now >= stop_at) running = 0;
        if ((!running && out == 0) || now >= end) break;
        while (running && out < (uint64_t)opt.window) {
            uint64_t s = next;
            if (ring[s % UDP_RING].state == 1) break; /* ring full of outstanding ones */
            memcpy(dgram, &s, 8);
            memcpy(dgram + 8, pat + (s * 131u) % PATN, (size_t)opt.size - 8);
            if (send(fd, dgram, (size_t)opt.size, 0) < 0) {
                if (errno != EAGAIN && errno != ENOBUFS && errno != ECONNREFUSED) count_errno(errno);
                break;
            }
            ring[s % UDP_RING].seq = s, ring[s % UDP_RING].t = now, ring[s % UDP_RING].state = 1;
            next++, out++, sent++;
        }
        if (now >= next_check) { /* unanswered for too long: lost */
            for (unsigned i = 0; i < UDP_RING; i++)
                if (ring[i].state == 1 && now - ring[i].t > lossns) ring[i].state = 2, out--, lost++;
            next_check = now + 5000000ull;
        }
        struct epoll_event evs[1];
        epoll_wait(ep, evs, 1, 5);
        for (;;) {
            ssize_t n = recv(fd, dgram, sizeof dgram, 0);
            if (n < 0) {
                if (errno != EAGAIN && errno != ECONNREFUSED) count_errno(errno);
                break;
            }
            uint64_t s, at = nowns();
            if (n < 8) { errs[E_SHORT]++; continue; }
            memcpy(&s, dgram, 8);
            if (n != opt.size || memcmp(dgram + 8, pat + (s * 131u) % PATN, (size_t)opt.size - 8)) { errs[E_MISMATCH]++; continue; }
            if (s >= next || ring[s % UDP_RING].seq != s || ring[s % UDP_RING].state == 0) { unexpected++; errs[E_UNEXPECTED]++; continue; }
            if (ring[s % UDP_RING].state == 2) { late++; ring[s % UDP_RING].state = 0; continue; }
            ring[s % UDP_RING].state = 0;
            out--;
            bytes_verified += (uint64_t)n;
            if (measuring(at)) { replies++; sample(at - ring[s % UDP_RING].t); }
        }
    }
    uint64_t wall = nowns() - t_start;
    print_head();
    printf("\"rate\":%.1f,\"unit\":\"req/s\",\"completed\":%llu,\"sent\":%llu,\"lost\":%llu,\"late\":%llu,"
           "\"loss_pct\":%.3f,\"outstanding_at_end\":%llu,\"client_cpu_pct\":%.1f,",
           replies / opt.duration, (unsigned long long)replies, (unsigned long long)sent, (unsigned long long)lost,
           (unsigned long long)late, sent ? 100.0 * (lost + out) / sent : 0, (unsigned long long)out, cpu_pct(wall));
    print_latency();
    printf(",");
    print_errors();
    int ok = errors_total() == 0 && replies > 0;
    printf("},\"ok\":%s}\n", ok ? "true" : "false");
    return ok ? 0 : 1;
}

/* ---- main ---------------------------------------------------------------------------------- */
static void usage(int code) {
    fprintf(code ? stderr : stdout,
            "usage: loadgen --mode rr|connrate|wac|bulk|udp|idle --port P [options]\n"
            "  --host A        IPv4 loopback address (127.0.0.1)\n"
            "  --conns C       connections (rr, bulk) or concurrent slots (connrate, wac) (10)\n"
            "  --size S        bytes per request or datagram (64)\n"
            "  --duration D    measured seconds (2); --warmup W seconds before (0.5)\n"
            "  --timeout T     a request unanswered for T seconds is an error (3)\n"
            "  --srcs N        connrate/wac: spread connections over 127.0.0.1..N (1)\n"
            "  --idle N        idle: connections to hold (1000); --hold H seconds (0.5)\n"
            "  --sid S         idle: report the memory of session S's processes (the server's)\n"
            "  --window W      udp: datagrams outstanding (32); --loss-ms M: lost after M ms (200)\n"
            "  --min/--max B   wac: bytes the server must send before closing (1, 4096)\n"
            "  --suffix X      wac: and what they must end with (e.g. $'\\r\\n')\n");
    exit(code);
}

int main(int argc, char **argv) {
    static struct option lo[] = {
        {"mode", 1, 0, 'm'}, {"host", 1, 0, 'H'}, {"port", 1, 0, 'p'}, {"conns", 1, 0, 'c'},
        {"size", 1, 0, 's'}, {"duration", 1, 0, 'd'}, {"warmup", 1, 0, 'w'}, {"timeout", 1, 0, 't'},
        {"srcs", 1, 0, 'S'}, {"idle", 1, 0, 'i'}, {"hold", 1, 0, 'h'}, {"sid", 1, 0, 'P'},
        {"window", 1, 0, 'W'}, {"loss-ms", 1, 0, 'L'}, {"min", 1, 0, 'n'}, {"max", 1, 0, 'x'},
        {"suffix", 1, 0, 'X'}, {"help", 0, 0, 'u'}, {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'm':
            opt.mode = -1;
            for (int i = 0; i < 6; i++) if (!strcmp(optarg, modes[i])) opt.mode = i;
            if (opt.mode < 0) { fprintf(stderr, "loadgen: unknown mode %s\n", optarg); return 2; }
            break;
        case 'H': opt.host = optarg; break;
        case 'p': opt.port = atoi(optarg); break;
        case 'c': opt.conns = atoi(optarg); break;
        case 's': opt.size = atoi(optarg); break;
        case 'd': opt.duration = atof(optarg); break;
        case 'w': opt.warmup = atof(optarg); break;
        case 't': opt.timeout = atof(optarg); break;
        case 'S': opt.srcs = atoi(optarg); break;
        case 'i': opt.idle = atoi(optarg); break;
        case 'h': opt.hold = atof(optarg); break;
        case 'P': opt.sid = atoi(optarg); break;
        case 'W': opt.window = atoi(optarg); break;
        case 'L': opt.lossms = atoi(optarg); break;
        case 'n': opt.min = atoi(optarg); break;
        case 'x': opt.max = atoi(optarg); break;
        case 'X': opt.suffix = optarg; break;
        case 'u': usage(0); break;
        default: usage(2); /* getopt has said which option was wrong */
        }
    }
    if (opt.port <= 0 || opt.port > 65535 || opt.conns < 1 || opt.size < 1 || opt.size > (int)CHUNK ||
        opt.duration <= 0 || opt.srcs < 1 || opt.srcs > 250 || opt.window < 1 || opt.window > (int)UDP_RING / 2) {
        fprintf(stderr, "loadgen: bad arguments (--port is required; see --help)\n");
        return 2;
    }
    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, opt.host, &dst.sin_addr) != 1 || (ntohl(dst.sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "loadgen: --host must be an IPv4 loopback address\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) { rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl); }
    uint32_t x = 2463534242u; /* xorshift32: a pattern with no short period and no zero runs */
    for (size_t i = 0; i < PATN; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        pat[i] = (unsigned char)(x >> 11);
    }
    for (size_t i = PATN; i < sizeof pat; i++) pat[i] = pat[i - PATN]; /* pat + (k % PATN): CHUNK contiguous bytes */
    ep = epoll_create1(0);
    t_start = nowns();
    return opt.mode == UDP ? run_udp() : run_tcp();
}
