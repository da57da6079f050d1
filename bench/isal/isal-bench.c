/*
 * isal-bench: throughput of Intel ISA-L's Reed-Solomon erasure code.
 *
 * Usage: isal-bench <k> <m> <blockBytes> <iterations>
 *
 * Prints one line of JSON to stdout:
 *   {"k":8,"m":4,"blockBytes":1048576,
 *    "encode":{"best":GBPS,"sse":GBPS},"reconstruct":{"best":GBPS,"sse":GBPS}}
 *
 * GBPS is GB/s (1e9 bytes/s) of data, counted as k * shardLen bytes per operation, where
 * shardLen = ceil(blockBytes / k) rounded up to a multiple of 64. "best" is ec_encode_data
 * (ISA-L's runtime-dispatched path, e.g. AVX2/AVX-512), "sse" is ec_encode_data_sse (the
 * 128-bit path, the same vector width as WebAssembly SIMD), or null when libisal does not
 * export ec_encode_data_sse. Each figure is the median of
 * REPS timed runs of <iterations> calls, after a warm-up.
 *
 * Build: cc -O2 -Wall -Wextra -o isal-bench isal-bench.c -lisal
 */
#define _POSIX_C_SOURCE 200112L

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <isa-l/erasure_code.h>

/*
 * Weak, so that a libisal built without the SSE entry point still links and runs: the
 * pointer is then NULL and the "sse" figures are reported as null.
 */
void ec_encode_data_sse(int len, int k, int rows, unsigned char *gftbls, unsigned char **data,
                        unsigned char **coding) __attribute__((weak));

#define REPS 5
#define ALIGN 64

static int have_sse;

typedef void (*encode_fn)(int len, int k, int rows, unsigned char *gftbls, unsigned char **data,
                          unsigned char **coding);

static void die(const char *msg) {
  fprintf(stderr, "isal-bench: %s\n", msg);
  exit(1);
}

static void *xalloc(size_t bytes) {
  void *p = NULL;
  if (posix_memalign(&p, ALIGN, bytes == 0 ? ALIGN : bytes) != 0 || p == NULL) {
    die("out of memory");
  }
  return p;
}

static long parse_arg(const char *s, const char *name, long min, long max) {
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
    fprintf(stderr, "isal-bench: %s must be an integer in [%ld, %ld], got '%s'\n", name, min,
            max, s);
    exit(2);
  }
  return v;
}

/* xorshift64*: any simple PRNG will do, the data only has to be non-trivial. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static void fill_random(unsigned char *buf, size_t len) {
  for (size_t i = 0; i < len; i++) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    buf[i] = (unsigned char)((rng_state * 0x2545F4914F6CDD1Dull) >> 56);
  }
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a;
  double y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* One timed run: `iterations` calls, returns GB/s of data (k * len bytes per call). */
static double time_run(encode_fn fn, int len, int k, int rows, unsigned char *tbls,
                       unsigned char **src, unsigned char **dst, long iterations) {
  double t0 = now_seconds();
  for (long i = 0; i < iterations; i++) fn(len, k, rows, tbls, src, dst);
  double elapsed = now_seconds() - t0;
  if (elapsed <= 0) elapsed = 1e-9;
  return (double)k * (double)len * (double)iterations / elapsed / 1e9;
}

/*
 * Warm up both paths, then time REPS runs of each. Runs of the two paths are interleaved so
 * that a noisy neighbour on this shared machine hurts both roughly alike.
 */
static void bench_pair(int len, int k, int rows, unsigned char *tbls, unsigned char **src,
                       unsigned char **dst, long iterations, double *best, double *sse) {
  double b[REPS], s[REPS];
  long warm = iterations / 4 + 1;
  for (long i = 0; i < warm; i++) {
    ec_encode_data(len, k, rows, tbls, src, dst);
    if (have_sse) ec_encode_data_sse(len, k, rows, tbls, src, dst);
  }
  for (int r = 0; r < REPS; r++) {
    b[r] = time_run(ec_encode_data, len, k, rows, tbls, src, dst, iterations);
    if (have_sse) s[r] = time_run(ec_encode_data_sse, len, k, rows, tbls, src, dst, iterations);
  }
  *best = median(b, REPS);
  *sse = have_sse ? median(s, REPS) : -1;
}

/* Writes a GB/s figure as a JSON number, or null for a path that is not available. */
static void print_gbps(double v) {
  if (v < 0) printf("null");
  else printf("%.4f", v);
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: isal-bench <k> <m> <blockBytes> <iterations>\n");
    return 2;
  }
  int k = (int)parse_arg(argv[1], "k", 1, 255);
  int m = (int)parse_arg(argv[2], "m", 1, 255);
  long block_bytes = parse_arg(argv[3], "blockBytes", 1, 1L << 30);
  long iterations = parse_arg(argv[4], "iterations", 1, 1L << 40);
  if (k + m > 256) die("k + m must be at most 256 in GF(2^8)");

  int n = k + m;
  have_sse = ec_encode_data_sse != NULL;
  long per_shard = (block_bytes + k - 1) / k;
  int len = (int)((per_shard + ALIGN - 1) / ALIGN * ALIGN);

  unsigned char *frags[256];
  for (int i = 0; i < n; i++) {
    frags[i] = xalloc((size_t)len);
    if (i < k) fill_random(frags[i], (size_t)len);
    else memset(frags[i], 0, (size_t)len);
  }
  unsigned char **data = frags;
  unsigned char **coding = frags + k;

  /* Systematic Cauchy matrix: identity on top of an m x k Cauchy block. */
  unsigned char *a = xalloc((size_t)n * (size_t)k);
  unsigned char *g_tbls = xalloc(32 * (size_t)k * (size_t)m);
  gf_gen_cauchy1_matrix(a, n, k);
  ec_init_tables(k, m, &a[k * k], g_tbls);

  /* Both paths must produce identical parity before we time them. */
  unsigned char *check[255];
  for (int i = 0; i < m; i++) check[i] = xalloc((size_t)len);
  ec_encode_data(len, k, m, g_tbls, data, coding);
  if (have_sse) {
    ec_encode_data_sse(len, k, m, g_tbls, data, check);
    for (int i = 0; i < m; i++) {
      if (memcmp(check[i], coding[i], (size_t)len) != 0) {
        die("ec_encode_data and ec_encode_data_sse disagree on parity");
      }
    }
  }

  double enc_best, enc_sse;
  bench_pair(len, k, m, g_tbls, data, check, iterations, &enc_best, &enc_sse);

  /* Reconstruct: lose the first nerrs data shards, decode from the first k survivors. */
  int nerrs = m < k ? m : k;
  unsigned char *b = xalloc((size_t)k * (size_t)k);
  unsigned char *inv = xalloc((size_t)k * (size_t)k);
  unsigned char *d_rows = xalloc((size_t)k * (size_t)nerrs);
  unsigned char *d_tbls = xalloc(32 * (size_t)k * (size_t)nerrs);
  unsigned char *survivors[255];
  for (int i = 0; i < k; i++) {
    int row = nerrs + i;
    memcpy(&b[k * i], &a[k * row], (size_t)k);
    survivors[i] = frags[row];
  }
  if (gf_invert_matrix(b, inv, k) != 0) die("decode matrix is singular");
  /* Lost shards are data shards 0..nerrs-1, so their rows of the inverse are 0..nerrs-1. */
  memcpy(d_rows, inv, (size_t)k * (size_t)nerrs);
  ec_init_tables(k, nerrs, d_rows, d_tbls);

  unsigned char *recovered[255];
  for (int i = 0; i < nerrs; i++) recovered[i] = xalloc((size_t)len);
  for (int pass = 0; pass < (have_sse ? 2 : 1); pass++) {
    encode_fn fn = pass == 0 ? ec_encode_data : ec_encode_data_sse;
    for (int i = 0; i < nerrs; i++) memset(recovered[i], 0, (size_t)len);
    fn(len, k, nerrs, d_tbls, survivors, recovered);
    for (int i = 0; i < nerrs; i++) {
      if (memcmp(recovered[i], data[i], (size_t)len) != 0) {
        fprintf(stderr, "isal-bench: %s reconstruction of data shard %d is wrong\n",
                pass == 0 ? "ec_encode_data" : "ec_encode_data_sse", i);
        return 1;
      }
    }
  }

  double rec_best, rec_sse;
  bench_pair(len, k, nerrs, d_tbls, survivors, recovered, iterations, &rec_best, &rec_sse);

  printf("{\"k\":%d,\"m\":%d,\"blockBytes\":%ld,\"encode\":{\"best\":", k, m, block_bytes);
  print_gbps(enc_best);
  printf(",\"sse\":");
  print_gbps(enc_sse);
  printf("},\"reconstruct\":{\"best\":");
  print_gbps(rec_best);
  printf(",\"sse\":");
  print_gbps(rec_sse);
  printf("}}\n");

  for (int i = 0; i < n; i++) free(frags[i]);
  for (int i = 0; i < m; i++) free(check[i]);
  for (int i = 0; i < nerrs; i++) free(recovered[i]);
  free(a);
  free(g_tbls);
  free(b);
  free(inv);
  free(d_rows);
  free(d_tbls);
  return 0;
}
