/* The x86 AVX2 part of the INT8 engine (int8_gemm.c): weight-pair packing, panels of pixel rows, the 4 x 16
 * vpmaddwd microkernel (requantized from its registers, int8_requant_avx2.h), and the uint8 k quads that both
 * VNNI microkernels read. Host only: a RISC-V build leaves this file out (it compiles to nothing off x86), and
 * int8_gemm.c calls it only where the CPU has AVX2. */
#include "int8_gemm_x86.h"

#if PT_ARCH_X86
#pragma GCC target("avx2")
#include <immintrin.h>
#include "int_math.h"
#include "int8_requant_avx2.h"

/* Packs k pairs [0, 8 * n8) of the 4 full rows w[0..3] (stride K) into dst: 16 int8 of each row become
 * 8 int16 pairs (int32), and a 4 x 8 transpose of those words gives 4 words per k pair. */
void pt_int8_pack_rows_avx2(const int8_t *w, int64_t K, int64_t n8, int32_t *dst)
{
    for (int64_t g = 0; g < n8; g++, dst += 32) {
        __m256i r[4];
        for (int i = 0; i < 4; i++)
            r[i] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + i * K + 16 * g)));
        /* r[i] lane j (int32) = pair j of row i; 128-bit halves hold pairs 0-3 and 4-7 */
        const __m256i t01lo = _mm256_unpacklo_epi32(r[0], r[1]), t01hi = _mm256_unpackhi_epi32(r[0], r[1]);
        const __m256i t23lo = _mm256_unpacklo_epi32(r[2], r[3]), t23hi = _mm256_unpackhi_epi32(r[2], r[3]);
        const __m256i q0 = _mm256_unpacklo_epi64(t01lo, t23lo); /* pairs 0 | 4, rows 0..3 */
        const __m256i q1 = _mm256_unpackhi_epi64(t01lo, t23lo); /* pairs 1 | 5 */
        const __m256i q2 = _mm256_unpacklo_epi64(t01hi, t23hi); /* pairs 2 | 6 */
        const __m256i q3 = _mm256_unpackhi_epi64(t01hi, t23hi); /* pairs 3 | 7 */
        _mm256_storeu_si256((__m256i *)dst, _mm256_permute2x128_si256(q0, q1, 0x20));       /* pairs 0, 1 */
        _mm256_storeu_si256((__m256i *)(dst + 8), _mm256_permute2x128_si256(q2, q3, 0x20));  /* pairs 2, 3 */
        _mm256_storeu_si256((__m256i *)(dst + 16), _mm256_permute2x128_si256(q0, q1, 0x31)); /* pairs 4, 5 */
        _mm256_storeu_si256((__m256i *)(dst + 24), _mm256_permute2x128_si256(q2, q3, 0x31)); /* pairs 6, 7 */
    }
}

void pt_int8_pair_rows_avx2(const uint8_t *x, int64_t row_stride, int64_t K, int64_t np, int16_t *panel,
                            int64_t kpair_stride)
{
    for (int64_t kp = 0; kp < (K + 1) / 2; kp++, panel += kpair_stride) {
        const uint8_t *a = x + 2 * kp * row_stride, *b = a + row_stride;
        const int has_b = 2 * kp + 1 < K;
        int64_t p = 0;
        for (; p + 8 <= np; p += 8) {
            const __m256i lo = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(a + p)));
            const __m256i hi = has_b ? _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(b + p)))
                                     : _mm256_setzero_si256();
            _mm256_storeu_si256((__m256i *)(panel + 2 * p), _mm256_or_si256(lo, _mm256_slli_epi32(hi, 16)));
        }
        for (; p < np; p++) {
            panel[2 * p] = a[p];
            panel[2 * p + 1] = has_b ? b[p] : 0;
        }
    }
}

/* The 16 codes into dst (pixel stride ps), the first n of them. */
static inline void store_codes(__m128i codes, int64_t n, uint8_t *dst, int64_t ps)
{
    if (ps == 1 && n == 16) {
        _mm_storeu_si128((__m128i *)dst, codes);
    } else {
        uint8_t bytes[16];
        _mm_storeu_si128((__m128i *)bytes, codes);
        for (int64_t j = 0; j < n; j++) dst[j * ps] = bytes[j];
    }
}

/* Channels [c, c + channels) (channels <= 4) x n <= 16 pixels into y (at channel c and the tile's first pixel):
 * the sums sum_kp madd(w pair of channel i, x pair of pixel j), 4 channels x 16 pixels in 8 registers, then
 * requantized from the registers. */
static void avx2_4x16(const pt_int8_gemm_problem *pr, int64_t c, int64_t channels, int64_t kpairs, const int32_t *wp,
                      const int16_t *x, int64_t ldk, int64_t n, uint8_t *y)
{
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00;
    __m256i c20 = c00, c21 = c00, c30 = c00, c31 = c00;
    for (int64_t kp = 0; kp < kpairs; kp++, wp += 4, x += ldk) {
        const __m256i b0 = _mm256_loadu_si256((const __m256i *)x);
        const __m256i b1 = _mm256_loadu_si256((const __m256i *)(x + 16));
        __m256i a = _mm256_set1_epi32(wp[0]);
        c00 = _mm256_add_epi32(c00, _mm256_madd_epi16(a, b0));
        c01 = _mm256_add_epi32(c01, _mm256_madd_epi16(a, b1));
        a = _mm256_set1_epi32(wp[1]);
        c10 = _mm256_add_epi32(c10, _mm256_madd_epi16(a, b0));
        c11 = _mm256_add_epi32(c11, _mm256_madd_epi16(a, b1));
        a = _mm256_set1_epi32(wp[2]);
        c20 = _mm256_add_epi32(c20, _mm256_madd_epi16(a, b0));
        c21 = _mm256_add_epi32(c21, _mm256_madd_epi16(a, b1));
        a = _mm256_set1_epi32(wp[3]);
        c30 = _mm256_add_epi32(c30, _mm256_madd_epi16(a, b0));
        c31 = _mm256_add_epi32(c31, _mm256_madd_epi16(a, b1));
    }
    const __m256i acc[4][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}};
    const int64_t cs = pr->y_channel_stride, ps = pr->y_pixel_stride;
    for (int64_t i = 0; i < channels; i++) {
        const pt_requant8 q = pt_requant8_channel(pr->rq, c + i, pr->K);
        store_codes(pt_requant8_codes16(&q, pr->rq, c + i, acc[i][0], acc[i][1]), n, y + (c + i) * cs, ps);
    }
}

void pt_int8_avx2_tiles(const pt_int8_gemm_problem *pr, int64_t c0, int64_t c1, const int32_t *wpack,
                       int64_t kpairs, const int16_t *panel, int64_t ldk, int64_t np, uint8_t *y)
{
    const int64_t ps = pr->y_pixel_stride;
    for (int64_t c = c0; c < c1; c += 4) /* c0 is a multiple of 4 */
        for (int64_t p = 0; p < np; p += PT_INT8_AVX2_PIXELS)
            avx2_4x16(pr, c, min64(4, c1 - c), kpairs, wpack + (c / 4) * kpairs * 4, panel + 2 * p, ldk,
                      min64(PT_INT8_AVX2_PIXELS, np - p), y + p * ps);
}

void pt_int8_vnni_quads(const int16_t *panel, int64_t ldk, int64_t kpairs, int64_t pixels, uint8_t *quads)
{
    const __m256i low_half = _mm256_set1_epi32(0xFFFF);
    for (int64_t kq = 0; kq < (kpairs + 1) / 2; kq++, quads += 4 * pixels) {
        const int16_t *a = panel + 2 * kq * ldk, *b = a + ldk;
        const int has_b = 2 * kq + 1 < kpairs;
        for (int64_t p = 0; p < pixels; p += 8) {
            /* a word of a k-pair row holds the codes of k and k + 1 as int16: bytes 0 and 2 */
            const __m256i A = _mm256_loadu_si256((const __m256i *)(a + 2 * p));
            const __m256i B = has_b ? _mm256_loadu_si256((const __m256i *)(b + 2 * p)) : _mm256_setzero_si256();
            const __m256i lo = _mm256_and_si256(_mm256_or_si256(A, _mm256_srli_epi32(A, 8)), low_half);
            const __m256i hi = _mm256_slli_epi32(_mm256_or_si256(B, _mm256_srli_epi32(B, 8)), 16);
            _mm256_storeu_si256((__m256i *)(quads + 4 * p), _mm256_or_si256(lo, hi));
        }
    }
}
#endif
