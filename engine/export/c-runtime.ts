/**
 * The fixed C sources of the `c` format: the runtime (lrnet.h, lrnet.c) that interprets the generated layer table of
 * lrnet_model.h, and main.c, which runs golden vectors. They are the same for every export; only lrnet_model.h is
 * generated. Kept as text here so the writer stays pure TypeScript.
 *
 * Discrete layers are computed with additions and subtractions only: each output channel stores its +1 positions
 * (and, ternary, its -1 positions) as bit masks over the layer's fan-in; the runtime walks the set bits and adds
 * (or subtracts) the matching inputs, so zero weights cost nothing. Binary layers store only the +1 mask, and
 * only the sparser sign of each 32-weight word is walked, using the word's input total T: P - M = 2P - T = T - 2M.
 * (T over a whole patch instead of per word would cancel two large sums: about 100x the rounding error of a dot
 * product on a binary MNIST net.)
 */

export const C_RUNTIME_VERSION = 1;

export const LRNET_H = String.raw`/*
 * lrnet runtime (export format "c", version 1): runs an exported LR-net with static buffers only.
 * Include this header; link lrnet.c. No dependencies beyond <stdint.h>. See docs/export-formats.md.
 */
#ifndef LRNET_H
#define LRNET_H

#include <stdint.h>

#define LRNET_RUNTIME_VERSION 1

enum { LRNET_OP_CONV = 1, LRNET_OP_DENSE = 2, LRNET_OP_MAXPOOL = 3, LRNET_OP_GLOBALAVGPOOL = 4, LRNET_OP_SCALESHIFT = 5, LRNET_OP_RELU = 6 };
enum { LRNET_W_NONE = 0, LRNET_W_BINARY = 1, LRNET_W_TERNARY = 2, LRNET_W_FLOAT32 = 3 };
enum { LRNET_BUF_INPUT = 0, LRNET_BUF_A = 1, LRNET_BUF_B = 2, LRNET_BUF_OUTPUT = 3 };
/* Values of LRNET_NORMALIZATION (macros: the preprocessor selects the code). */
#define LRNET_NORM_UNIT 0
#define LRNET_NORM_PER_IMAGE_STANDARDIZATION 1

/* One step of the network. Dense layers use in_c = inputs, out_c = units and 1x1 spatial sizes. */
typedef struct lrnet_layer {
  uint8_t op;        /* LRNET_OP_* */
  uint8_t encoding;  /* LRNET_W_*: how the weights of a conv/dense layer are stored */
  uint8_t src, dst;  /* LRNET_BUF_* */
  uint8_t relu;      /* 1: ReLU applied to the output */
  uint32_t kernel, stride, pad_top, pad_left;
  uint32_t in_h, in_w, in_c, out_h, out_w, out_c;
  uint32_t fan_in;   /* kernel * kernel * in_c (dense: in_c) */
  uint32_t words;    /* 32-bit mask words per output channel: ceil(fan_in / 32) */
  const uint32_t *plus;   /* [out_c][words]: bit f set where weight (f, oc) is +1 */
  const uint32_t *minus;  /* ternary: [out_c][words]: bit f set where weight (f, oc) is -1 */
  const float *weights;   /* float32 encoding: [out_c][fan_in] */
  const float *scale, *shift; /* folded batch norm (or NULL) */
  const float *bias;          /* full-precision layers (or NULL) */
} lrnet_layer;

#include "lrnet_model.h"

/* Logits of one image: input is LRNET_INPUT_SIZE normalized floats (NHWC), logits LRNET_NUM_CLASSES floats. */
void lrnet_run(const float *input, float *logits);

/* The training pipeline's input normalization of raw pixels (HWC bytes) into LRNET_INPUT_SIZE floats. */
void lrnet_normalize_u8(const uint8_t *pixels, float *input);

/* Index of the largest logit (the first one on ties). */
int lrnet_argmax(const float *logits);

#endif
`;

export const LRNET_C = String.raw`/*
 * lrnet runtime (export format "c", version 1). Dependency-free C99: no libc, no heap, no floating-point library.
 * Discrete layers use additions and subtractions only; multiplications appear in the folded batch norm (one per
 * output value), the full-precision classifier and the float32 encoding that benchmarks compare against.
 */
#define LRNET_MODEL_DEFINE_DATA
#include "lrnet.h"

static float lrnet_buf_a[LRNET_BUF_A_FLOATS];
static float lrnet_buf_b[LRNET_BUF_B_FLOATS];
static float lrnet_patch[LRNET_PATCH_FLOATS];
static float lrnet_totals[LRNET_TOTALS_FLOATS];

#if defined(__GNUC__) || defined(__clang__)
#define LRNET_CTZ(x) ((uint32_t)__builtin_ctz(x))
#else
static uint32_t lrnet_ctz(uint32_t x) {
  uint32_t n = 0;
  while (!(x & 1u)) { x >>= 1; n++; }
  return n;
}
#define LRNET_CTZ(x) lrnet_ctz(x)
#endif

/*
 * Ternary layers: sum(x[f] where the weight is +1) - sum(x[f] where it is -1), walking the set bits of the two masks:
 * additions and subtractions only, zero weights skipped. Each 32-weight word is summed per sign (two independent
 * chains) and its difference added to the total; summing the whole fan-in per sign before subtracting would cancel
 * two large sums.
 */
static float lrnet_ternary_sum(const uint32_t *plus, const uint32_t *minus, uint32_t words, const float *x) {
  float acc = 0.0f;
  uint32_t w;
  for (w = 0; w < words; w++) {
    uint32_t pos = plus[w], neg = minus[w];
    const float *q = x + 32u * w;
    float p = 0.0f, m = 0.0f;
    while (pos) {
      p += q[LRNET_CTZ(pos)];
      pos &= pos - 1u;
    }
    while (neg) {
      m += q[LRNET_CTZ(neg)];
      neg &= neg - 1u;
    }
    acc += p - m;
  }
  return acc;
}

/* Set bits of a word (SWAR, shifts and adds only). */
static uint32_t lrnet_popcount(uint32_t v) {
  v = v - ((v >> 1) & 0x55555555u);
  v = (v & 0x33333333u) + ((v >> 2) & 0x33333333u);
  v = (v + (v >> 4)) & 0x0f0f0f0fu;
  v += v >> 8;
  v += v >> 16;
  return v & 0x3fu;
}

/*
 * Binary layers: every weight is +1 or -1. With T the sum of a word's 32 inputs (shared by all output channels, see
 * lrnet_word_totals), P - M = 2P - T = T - 2M, so only the sparser sign of each word is walked: at most 16 additions
 * per 32 weights. Doubling is an addition (s + s) and T is per word, so no large sums cancel.
 */
static float lrnet_binary_sum(const uint32_t *plus, const float *totals, uint32_t words, uint32_t fan_in, const float *x) {
  float acc = 0.0f;
  uint32_t w;
  for (w = 0; w < words; w++) {
    uint32_t n = (w + 1u < words || (fan_in & 31u) == 0u) ? 32u : (fan_in & 31u);
    uint32_t valid = n == 32u ? 0xffffffffu : ((1u << n) - 1u);
    uint32_t pos = plus[w] & valid;
    const float *q = x + 32u * w;
    float s = 0.0f;
    if (lrnet_popcount(pos) * 2u <= n) {
      while (pos) {
        s += q[LRNET_CTZ(pos)];
        pos &= pos - 1u;
      }
      acc += (s + s) - totals[w];
    } else {
      uint32_t neg = ~pos & valid;
      while (neg) {
        s += q[LRNET_CTZ(neg)];
        neg &= neg - 1u;
      }
      acc += totals[w] - (s + s);
    }
  }
  return acc;
}

/* Sums of each 32-input word of x (the last word may be shorter). */
static void lrnet_word_totals(const float *x, uint32_t fan_in, float *totals) {
  uint32_t f;
  for (f = 0; f < fan_in; f++) {
    if ((f & 31u) == 0u) totals[f >> 5] = 0.0f;
    totals[f >> 5] += x[f];
  }
}

/* Copies the conv input window of output pixel (oy, ox) into lrnet_patch in fan-in order (ky, kx, c); padding is 0. */
static const float *lrnet_gather(const lrnet_layer *L, const float *src, uint32_t oy, uint32_t ox) {
  float *p = lrnet_patch;
  uint32_t ky, kx, c;
  for (ky = 0; ky < L->kernel; ky++) {
    long iy = (long)(oy * L->stride + ky) - (long)L->pad_top;
    for (kx = 0; kx < L->kernel; kx++) {
      long ix = (long)(ox * L->stride + kx) - (long)L->pad_left;
      if (iy < 0 || ix < 0 || iy >= (long)L->in_h || ix >= (long)L->in_w) {
        for (c = 0; c < L->in_c; c++) *p++ = 0.0f;
      } else {
        const float *s = src + ((uint32_t)iy * L->in_w + (uint32_t)ix) * L->in_c;
        for (c = 0; c < L->in_c; c++) *p++ = s[c];
      }
    }
  }
  return lrnet_patch;
}

static void lrnet_linear(const lrnet_layer *L, const float *src, float *dst) {
  uint32_t oy, ox, oc, f;
  for (oy = 0; oy < L->out_h; oy++) {
    for (ox = 0; ox < L->out_w; ox++) {
      const float *x = L->op == LRNET_OP_CONV ? lrnet_gather(L, src, oy, ox) : src;
      float *out = dst + (oy * L->out_w + ox) * L->out_c;
      if (L->encoding == LRNET_W_BINARY) lrnet_word_totals(x, L->fan_in, lrnet_totals);
      for (oc = 0; oc < L->out_c; oc++) {
        float acc;
        if (L->encoding == LRNET_W_BINARY) {
          acc = lrnet_binary_sum(L->plus + oc * L->words, lrnet_totals, L->words, L->fan_in, x);
        } else if (L->encoding == LRNET_W_TERNARY) {
          acc = lrnet_ternary_sum(L->plus + oc * L->words, L->minus + oc * L->words, L->words, x);
        } else {
          const float *w = L->weights + oc * L->fan_in;
          acc = 0.0f;
          for (f = 0; f < L->fan_in; f++) acc += w[f] * x[f];
        }
        if (L->scale) acc = acc * L->scale[oc] + L->shift[oc];
        if (L->bias) acc += L->bias[oc];
        if (L->relu && acc < 0.0f) acc = 0.0f;
        out[oc] = acc;
      }
    }
  }
}

static void lrnet_maxpool(const lrnet_layer *L, const float *src, float *dst) {
  uint32_t oy, ox, c, ky, kx;
  for (oy = 0; oy < L->out_h; oy++) {
    for (ox = 0; ox < L->out_w; ox++) {
      for (c = 0; c < L->out_c; c++) {
        float m = 0.0f;
        int any = 0;
        for (ky = 0; ky < L->kernel; ky++) {
          long iy = (long)(oy * L->stride + ky) - (long)L->pad_top;
          if (iy < 0 || iy >= (long)L->in_h) continue;
          for (kx = 0; kx < L->kernel; kx++) {
            long ix = (long)(ox * L->stride + kx) - (long)L->pad_left;
            float v;
            if (ix < 0 || ix >= (long)L->in_w) continue;
            v = src[((uint32_t)iy * L->in_w + (uint32_t)ix) * L->in_c + c];
            if (!any || v > m) { m = v; any = 1; }
          }
        }
        if (L->relu && m < 0.0f) m = 0.0f;
        dst[(oy * L->out_w + ox) * L->out_c + c] = m;
      }
    }
  }
}

static void lrnet_elementwise(const lrnet_layer *L, const float *src, float *dst) {
  uint32_t i, n = L->in_h * L->in_w * L->in_c;
  for (i = 0; i < n; i++) {
    float v = src[i];
    if (L->op == LRNET_OP_SCALESHIFT) v = v * L->scale[i % L->in_c] + L->shift[i % L->in_c];
    if (L->relu && v < 0.0f) v = 0.0f;
    dst[i] = v;
  }
}

static void lrnet_globalavgpool(const lrnet_layer *L, const float *src, float *dst) {
  uint32_t c, i, n = L->in_h * L->in_w;
  for (c = 0; c < L->in_c; c++) {
    float s = 0.0f;
    for (i = 0; i < n; i++) s += src[i * L->in_c + c];
    s = s / (float)n;
    dst[c] = L->relu && s < 0.0f ? 0.0f : s;
  }
}

void lrnet_run(const float *input, float *logits) {
  uint32_t i;
  for (i = 0; i < LRNET_NUM_LAYERS; i++) {
    const lrnet_layer *L = &lrnet_layers[i];
    const float *src = L->src == LRNET_BUF_INPUT ? input : L->src == LRNET_BUF_A ? lrnet_buf_a : lrnet_buf_b;
    float *dst = L->dst == LRNET_BUF_OUTPUT ? logits : L->dst == LRNET_BUF_A ? lrnet_buf_a : lrnet_buf_b;
    switch (L->op) {
      case LRNET_OP_CONV:
      case LRNET_OP_DENSE: lrnet_linear(L, src, dst); break;
      case LRNET_OP_MAXPOOL: lrnet_maxpool(L, src, dst); break;
      case LRNET_OP_GLOBALAVGPOOL: lrnet_globalavgpool(L, src, dst); break;
      default: lrnet_elementwise(L, src, dst); break;
    }
  }
}

#if LRNET_NORMALIZATION == LRNET_NORM_PER_IMAGE_STANDARDIZATION
/* Square root by Newton's method from above (no math library); exact to double precision for v >= 0. */
static double lrnet_sqrt(double v) {
  double r;
  int i;
  if (v <= 0.0) return 0.0;
  r = v > 1.0 ? v : 1.0;
  for (i = 0; i < 200; i++) {
    double next = 0.5 * (r + v / r);
    if (next >= r) break;
    r = next;
  }
  return r;
}
#endif

void lrnet_normalize_u8(const uint8_t *pixels, float *input) {
  uint32_t i;
#if LRNET_NORMALIZATION == LRNET_NORM_PER_IMAGE_STANDARDIZATION
  double sum = 0.0, sum_sq = 0.0, mean, variance, std, scale;
  for (i = 0; i < LRNET_INPUT_SIZE; i++) {
    double v = (double)pixels[i];
    sum += v;
    sum_sq += v * v;
  }
  mean = sum / (double)LRNET_INPUT_SIZE;
  variance = sum_sq / (double)LRNET_INPUT_SIZE - mean * mean;
  if (variance < 0.0) variance = 0.0;
  std = lrnet_sqrt(variance);
  scale = 1.0 / (std > LRNET_MIN_STD ? std : LRNET_MIN_STD);
  for (i = 0; i < LRNET_INPUT_SIZE; i++) input[i] = (float)(((double)pixels[i] - mean) * scale);
#else
  for (i = 0; i < LRNET_INPUT_SIZE; i++) input[i] = (float)((double)pixels[i] / 255.0);
#endif
}

int lrnet_argmax(const float *logits) {
  int i, best = 0;
  for (i = 1; i < LRNET_NUM_CLASSES; i++) if (logits[i] > logits[best]) best = i;
  return best;
}
`;

export const MAIN_C = String.raw`/*
 * Golden-vector check of an exported LR-net:
 *   lrnet_main INPUTS.f32 EXPECTED.f32 [PIXELS.u8] [--tolerance X] [--write-logits OUT.f32]
 * INPUTS: n x LRNET_INPUT_SIZE normalized float32 inputs; EXPECTED: n x LRNET_NUM_CLASSES float32 logits of the
 * reference (little-endian); PIXELS (optional): the raw n x LRNET_INPUT_SIZE bytes, to check lrnet_normalize_u8;
 * OUT (optional): receives the n x LRNET_NUM_CLASSES logits this build computed.
 * Prints one JSON line; exits 0 when every top-1 class agrees and max |logit difference| <= tolerance (default 1e-3).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lrnet.h"

static void *read_all(const char *path, size_t *bytes) {
  FILE *f = fopen(path, "rb");
  void *data;
  long size;
  if (!f) { fprintf(stderr, "lrnet_main: cannot open %s\n", path); exit(2); }
  if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
    fprintf(stderr, "lrnet_main: cannot size %s\n", path); exit(2);
  }
  data = malloc(size > 0 ? (size_t)size : 1u);
  if (!data || fread(data, 1, (size_t)size, f) != (size_t)size) { fprintf(stderr, "lrnet_main: cannot read %s\n", path); exit(2); }
  fclose(f);
  *bytes = (size_t)size;
  return data;
}

static int argmax_n(const float *v, int n) {
  int i, best = 0;
  for (i = 1; i < n; i++) if (v[i] > v[best]) best = i;
  return best;
}

int main(int argc, char **argv) {
  const char *paths[3] = { NULL, NULL, NULL };
  int npaths = 0, i;
  double tolerance = 1e-3, max_diff = 0.0, max_norm_diff = 0.0;
  size_t in_bytes, out_bytes, n, k, agree = 0, j;
  float *inputs, *expected, logits[LRNET_NUM_CLASSES], normalized[LRNET_INPUT_SIZE];
  unsigned char *pixels = NULL;
  const char *logits_out = NULL;
  FILE *out = NULL;
  const uint16_t one = 1;
  if (*(const unsigned char *)&one != 1) { fprintf(stderr, "lrnet_main: golden files are little-endian, this host is not\n"); return 2; }
  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--tolerance") == 0 && i + 1 < argc) tolerance = atof(argv[++i]);
    else if (strcmp(argv[i], "--write-logits") == 0 && i + 1 < argc) logits_out = argv[++i];
    else if (npaths < 3) paths[npaths++] = argv[i];
  }
  if (npaths < 2) { fprintf(stderr, "usage: lrnet_main INPUTS.f32 EXPECTED.f32 [PIXELS.u8] [--tolerance X] [--write-logits OUT.f32]\n"); return 2; }
  inputs = (float *)read_all(paths[0], &in_bytes);
  expected = (float *)read_all(paths[1], &out_bytes);
  n = in_bytes / (sizeof(float) * LRNET_INPUT_SIZE);
  if (in_bytes != n * sizeof(float) * LRNET_INPUT_SIZE || out_bytes != n * sizeof(float) * LRNET_NUM_CLASSES) {
    fprintf(stderr, "lrnet_main: %s and %s do not hold the same number of images\n", paths[0], paths[1]);
    return 2;
  }
  if (paths[2]) {
    size_t px_bytes;
    pixels = (unsigned char *)read_all(paths[2], &px_bytes);
    if (px_bytes != n * LRNET_INPUT_SIZE) { fprintf(stderr, "lrnet_main: %s does not hold %lu images\n", paths[2], (unsigned long)n); return 2; }
  }
  if (logits_out && !(out = fopen(logits_out, "wb"))) { fprintf(stderr, "lrnet_main: cannot create %s\n", logits_out); return 2; }
  for (k = 0; k < n; k++) {
    const float *x = inputs + k * LRNET_INPUT_SIZE;
    const float *e = expected + k * LRNET_NUM_CLASSES;
    if (pixels) {
      lrnet_normalize_u8(pixels + k * LRNET_INPUT_SIZE, normalized);
      for (j = 0; j < LRNET_INPUT_SIZE; j++) {
        double d = (double)normalized[j] - (double)x[j];
        if (d < 0) d = -d;
        if (d > max_norm_diff) max_norm_diff = d;
      }
    }
    lrnet_run(x, logits);
    if (out && fwrite(logits, sizeof(float), LRNET_NUM_CLASSES, out) != LRNET_NUM_CLASSES) { fprintf(stderr, "lrnet_main: cannot write %s\n", logits_out); return 2; }
    for (j = 0; j < LRNET_NUM_CLASSES; j++) {
      double d = (double)logits[j] - (double)e[j];
      if (d < 0) d = -d;
      if (!(d <= max_diff)) max_diff = d; /* NaN sticks */
    }
    if (lrnet_argmax(logits) == argmax_n(e, LRNET_NUM_CLASSES)) agree++;
  }
  printf("{\"images\":%lu,\"top1Agree\":%lu,\"maxAbsDiff\":%.9g,\"normalizationMaxAbsDiff\":%.9g,\"flashBytes\":%lu,\"ramBytes\":%lu}\n",
         (unsigned long)n, (unsigned long)agree, max_diff, max_norm_diff, (unsigned long)LRNET_FLASH_BYTES, (unsigned long)LRNET_RAM_BYTES);
  if (out && fclose(out) != 0) { fprintf(stderr, "lrnet_main: cannot write %s\n", logits_out); return 2; }
  free(inputs);
  free(expected);
  free(pixels);
  return agree == n && max_diff <= tolerance ? 0 : 1;
}
`;

/** The flags the C export is verified with (and its Makefile uses). */
export const C_FLAGS = ['-std=c99', '-Wall', '-Wextra', '-Werror', '-O2'] as const;

export const MAKEFILE = `# Builds and checks the exported LR-net with the flags the exporter verified it with.
CC ?= gcc
CFLAGS ?= ${C_FLAGS.join(' ')}

lrnet_main: main.c lrnet.c lrnet.h lrnet_model.h
\t$(CC) $(CFLAGS) -o $@ main.c lrnet.c

check: lrnet_main
\t./lrnet_main ../golden/inputs.f32 ../golden/logits.f32 ../golden/pixels.u8

clean:
\trm -f lrnet_main

.PHONY: check clean
`;
