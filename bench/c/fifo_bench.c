/*
 * C baselines for `npm run bench`: the same work over a FIFO with plain
 * write()/read(), compiled at bench time with cc.
 *
 *   fifo_bench write  FIFO SIZE COUNT [PIPESZ]  one write() per SIZE-byte message (into a pipe of
 *                                            PIPESZ bytes if given; several writers may share a FIFO:
 *                                            writes of at most PIPE_BUF bytes stay whole)
 *   fifo_bench bulk   FIFO CHUNK TOTAL PIPESZ  CHUNK-byte writes into a pipe of PIPESZ
 *   fifo_bench read   FIFO BUFSIZE TOTAL [hold]  reads until TOTAL bytes; prints seconds, and the
 *                                            time and bytes at the first tenth (warm-up). hold: opens
 *                                            the FIFO read-write, so that no end of file comes between
 *                                            one writer closing and the next opening (several writers)
 *   fifo_bench splice-send FIFO PIPESZ     stdin (a file) into the FIFO with splice(2), a pipe of PIPESZ
 *   fifo_bench splice-recv FIFO PIPESZ     the FIFO into stdout (/dev/null, a file) with splice(2)
 *   fifo_bench rw-send FIFO CHUNK PIPESZ   stdin into the FIFO with CHUNK-byte read()/write()
 *   fifo_bench rw-recv FIFO BUFSIZE        the FIFO into stdout with BUFSIZE-byte read()/write()
 *                                            (these four print nothing: the bench times them from
 *                                            outside, as it times the CLI)
 *   fifo_bench pong   REQ REP SIZE [SPIN]    echo server for ping
 *   fifo_bench ping   REQ REP SIZE ITERS [SPIN]  round trips; prints p50 and p99 in microseconds
 *   fifo_bench fanout SIZE COUNT FIFO...     COUNT messages of SIZE bytes, each written to every FIFO in turn
 *
 * SPIN (microseconds, default 0): the reads of ping and pong busy-poll a
 * non-blocking descriptor for up to SPIN microseconds before sleeping in poll(),
 * the policy npipe's busyPoll option follows, for a like-for-like row.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) { perror("write"); exit(1); }
    p += w;
    n -= (size_t)w;
  }
}

/* read(), busy-polling up to spin_us microseconds when nothing is there yet (fd is non-blocking), then poll(). */
static ssize_t read_spin(int fd, char *p, size_t n, double spin_us) {
  double until = now() + spin_us / 1e6;
  for (;;) {
    ssize_t r = read(fd, p, n);
    if (r >= 0 || errno != EAGAIN) return r;
    if (now() < until) continue;
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    poll(&pfd, 1, -1);
  }
}

static void read_all_spin(int fd, char *p, size_t n, double spin_us) {
  while (n > 0) {
    ssize_t r = read_spin(fd, p, n, spin_us);
    if (r <= 0) { perror("read"); exit(1); }
    p += r;
    n -= (size_t)r;
  }
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: see the comment at the top of fifo_bench.c\n"); return 2; }
  const char *mode = argv[1];
  if (!strcmp(mode, "write") && (argc == 5 || argc == 6)) {
    size_t size = strtoul(argv[3], 0, 10), count = strtoul(argv[4], 0, 10);
    int fd = open(argv[2], O_WRONLY);
    if (fd < 0) { perror("open"); return 1; }
    if (argc == 6) fcntl(fd, F_SETPIPE_SZ, atoi(argv[5]));
    char *msg = malloc(size);
    memset(msg, 'x', size);
    for (size_t i = 0; i < count; i++) write_all(fd, msg, size);
    return 0;
  }
  if (!strcmp(mode, "fanout") && argc >= 5) {
    /* fanout SIZE COUNT FIFO...: each message written to every FIFO in turn, one write each (publish/subscribe's baseline). */
    size_t size = strtoul(argv[2], 0, 10), count = strtoul(argv[3], 0, 10);
    int n = argc - 4, fds[64];
    if (n > 64) { fprintf(stderr, "at most 64 FIFOs\n"); return 2; }
    for (int k = 0; k < n; k++) {
      fds[k] = open(argv[4 + k], O_WRONLY);
      if (fds[k] < 0) { perror("open"); return 1; }
    }
    char *msg = malloc(size);
    memset(msg, 'x', size);
    for (size_t i = 0; i < count; i++)
      for (int k = 0; k < n; k++) write_all(fds[k], msg, size);
    return 0;
  }
  if (!strcmp(mode, "bulk") && argc == 6) {
    size_t chunk = strtoul(argv[3], 0, 10), total = strtoul(argv[4], 0, 10);
    int fd = open(argv[2], O_WRONLY);
    if (fd < 0) { perror("open"); return 1; }
    fcntl(fd, F_SETPIPE_SZ, atoi(argv[5]));
    char *buf = aligned_alloc(4096, chunk);
    memset(buf, 'x', chunk);
    for (size_t done = 0; done < total; done += chunk) write_all(fd, buf, chunk);
    return 0;
  }
  if (!strcmp(mode, "read") && (argc == 5 || (argc == 6 && !strcmp(argv[5], "hold")))) {
    size_t bufsize = strtoul(argv[3], 0, 10), total = strtoull(argv[4], 0, 10), got = 0;
    int fd = open(argv[2], argc == 6 ? O_RDWR : O_RDONLY);
    if (fd < 0) { perror("open"); return 1; }
    char *buf = aligned_alloc(4096, bufsize);
    double start = 0, warm_at = 0;
    size_t warm = total / 10, warm_bytes = 0;
    while (got < total) {
      ssize_t r = read(fd, buf, bufsize);
      if (r <= 0) break;
      if (got == 0) start = now();
      got += (size_t)r;
      if (warm_at == 0 && got >= warm) { warm_at = now(); warm_bytes = got; }
    }
    printf("{\"seconds\":%.6f,\"bytes\":%zu,\"warmSeconds\":%.6f,\"warmBytes\":%zu}\n", now() - start, got, warm_at - start, warm_bytes);
    return 0;
  }
  if ((!strcmp(mode, "splice-send") || !strcmp(mode, "splice-recv")) && argc == 4) {
    int sending = !strcmp(mode, "splice-send");
    int fd = open(argv[2], sending ? O_WRONLY : O_RDONLY);
    if (fd < 0) { perror("open"); return 1; }
    int size = atoi(argv[3]);
    if (fcntl(fd, F_SETPIPE_SZ, size) < 0) { perror("F_SETPIPE_SZ"); return 1; }
    int in = sending ? 0 : fd, out = sending ? fd : 1;
    for (;;) {
      ssize_t n = splice(in, 0, out, 0, (size_t)size, SPLICE_F_MOVE);
      if (n == 0) return 0;
      if (n < 0) { perror("splice"); return 1; }
    }
  }
  if (!strcmp(mode, "rw-send") && argc == 5) {
    int fd = open(argv[2], O_WRONLY);
    if (fd < 0) { perror("open"); return 1; }
    size_t chunk = strtoul(argv[3], 0, 10);
    fcntl(fd, F_SETPIPE_SZ, atoi(argv[4]));
    char *buf = aligned_alloc(4096, chunk);
    for (;;) {
      ssize_t r = read(0, buf, chunk);
      if (r == 0) return 0;
      if (r < 0) { perror("read"); return 1; }
      write_all(fd, buf, (size_t)r);
    }
  }
  if (!strcmp(mode, "rw-recv") && argc == 4) {
    int fd = open(argv[2], O_RDONLY);
    if (fd < 0) { perror("open"); return 1; }
    size_t bufsize = strtoul(argv[3], 0, 10);
    char *buf = aligned_alloc(4096, bufsize);
    for (;;) {
      ssize_t r = read(fd, buf, bufsize);
      if (r == 0) return 0;
      if (r < 0) { perror("read"); return 1; }
      write_all(1, buf, (size_t)r);
    }
  }
  if (!strcmp(mode, "pong") && (argc == 5 || argc == 6)) {
    size_t size = strtoul(argv[4], 0, 10);
    double spin = argc == 6 ? atof(argv[5]) : 0;
    int req = open(argv[2], O_RDONLY), rep = open(argv[3], O_WRONLY);
    if (spin > 0) fcntl(req, F_SETFL, O_NONBLOCK);
    char *buf = malloc(size);
    for (;;) {
      ssize_t r = read_spin(req, buf, size, spin);
      if (r <= 0) return 0;
      read_all_spin(req, buf + r, size - (size_t)r, spin);
      write_all(rep, buf, size);
    }
  }
  if (!strcmp(mode, "ping") && (argc == 6 || argc == 7)) {
    size_t size = strtoul(argv[4], 0, 10), iters = strtoul(argv[5], 0, 10);
    double spin = argc == 7 ? atof(argv[6]) : 0;
    int req = open(argv[2], O_WRONLY), rep = open(argv[3], O_RDONLY);
    if (spin > 0) fcntl(rep, F_SETFL, O_NONBLOCK);
    char *buf = malloc(size);
    memset(buf, 'p', size);
    double *lat = malloc(sizeof(double) * iters);
    for (size_t i = 0; i < iters; i++) {
      double t = now();
      write_all(req, buf, size);
      read_all_spin(rep, buf, size, spin);
      lat[i] = (now() - t) * 1e6;
    }
    qsort(lat, iters, sizeof(double), cmp);
    printf("{\"p50\":%.1f,\"p99\":%.1f}\n", lat[iters / 2], lat[iters * 99 / 100]);
    return 0;
  }
  fprintf(stderr, "fifo_bench: bad arguments\n");
  return 2;
}
