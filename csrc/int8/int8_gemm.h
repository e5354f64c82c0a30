/* The engine of the INT8 conv / pointwise / linear kernels: y = requant(W . X) over panels of pixels.
 *
 * W is (C_out, K) int8, row-major (the PyTorch weight of a conv, OIHW, is already this: K = C_in*kh*kw).
 * For each image, a layer-specific `build_panel` writes the activations of pixels [p0, p1) widened to
 * int16 into a panel, element (pixel p - p0, patch index k) at
 *     panel[(k / 2) * kpair_stride + (p - p0) * pixel_stride + k % 2]
 * (the engine picks the strides for its microkernel and zero-fills the padding: K is padded to even).
 * int16 lets the host's SIMD multiply-add pairs of products without saturation.
 *
 * Microkernels (pt_int8_set_microkernel):
 *   "portable-4x2": PULP-NN's tile, 4 output channels x 2 pixels, each a dot product over K of an int8
 *                   weight row and a pixel-major int16 row (kpair_stride 2, pixel_stride K rounded up to
 *                   even). Plain C, for any target (rv32 included).
 *   "avx2-4x16":    (x86 CPUs with AVX2) 4 output channels x 16 pixels; the panel is k-pair-major
 *                   (pixel_stride 2) and each core packs the weight blocks it uses into int16 pairs (in
 *                   its workspace, once per call), so one vpmaddwd adds the products of two k for 8
 *                   pixels, with no horizontal sums.
 *   "avxvnni-6x16": (x86 CPUs with AVX2 and AVX-VNNI) the k-pair-major panel copied to uint8 k quads, 6
 *                   channels x 16 pixels, one VEX vpdpbusd (4 uint8 codes times 4 int8 weights, the weights
 *                   read from their rows) per 8 pixels: the avx2 level's kernel where the CPU has AVX-VNNI.
 *   "avx512vnni-8x32": (x86 CPUs with AVX512-VNNI) the same k quads, 8 channels x 32 pixels, one vpdpbusd per
 *                   16 pixels.
 * All give exactly the same integers. "auto" picks the best one of the team's ISA level (isa.h).
 * The int32 sums are requantized (int8_requant.h) straight into
 *   y[img * y_img_stride + c * y_channel_stride + p * y_pixel_stride].
 * Work units are (image, pixel panel, block of output channels), split across cores; every output element
 * is computed by one core with the same integer arithmetic, so results do not depend on the team size.
 */
#ifndef PT_INT8_GEMM_H
#define PT_INT8_GEMM_H

#include "parallel.h"
#include <stdint.h>
#include "int8_requant.h"

typedef void (*pt_int8_panel_fn)(const void *ctx, int64_t img, int64_t p0, int64_t p1, int16_t *panel,
                                 int64_t pixel_stride, int64_t kpair_stride);

typedef struct {
    int64_t images, pixels, K, c_out;
    const int8_t *w;
    const pt_requant *rq;
    uint8_t *y;
    int64_t y_img_stride, y_channel_stride, y_pixel_stride;
    pt_int8_panel_fn build_panel;
    const void *ctx;
} pt_int8_gemm_problem;

/* Panel index of patch element k of panel pixel p (see above). */
static inline int64_t pt_int8_panel_index(int64_t p, int64_t k, int64_t pixel_stride, int64_t kpair_stride)
{
    return (k >> 1) * kpair_stride + p * pixel_stride + (k & 1);
}

/* Workspace bytes for a problem of these sizes and team size (0 if a size is < 1). */
int64_t pt_int8_gemm_workspace_bytes(const pt_team *team, int64_t images, int64_t pixels, int64_t K, int64_t c_out);

/* Runs the problem on the team. Checks sizes, K <= PT_INT8_MAX_K, the requant parameters, workspace. */
pt_status pt_int8_gemm_run(const pt_team *team, const pt_int8_gemm_problem *pr, void *workspace,
                           int64_t workspace_bytes);

/* The default microkernel (what pt_team_default() reports; a kernel uses its team's int8_microkernel):
 * names above; "auto" = the fastest available. Unknown or unavailable names give PT_ERR_UNKNOWN_VARIANT. */
pt_status pt_int8_set_microkernel(const char *name);
/* The name the default stands for, and the default itself (PT_INT8_MICROKERNEL_AUTO or an index). */
const char *pt_int8_get_microkernel(void);
int pt_int8_get_default_microkernel(void);
/* Names of the microkernels this CPU can run (in the order above, those it cannot run left out), NULL past the
 * end; pt_team.int8_microkernel indexes this list. */
const char *pt_int8_microkernel_name(int index);

/* The microkernel family a team's INT8 kernels run: its choice, or "auto" resolved for its ISA level (the
 * depthwise kernel's x86 dispatch follows it too; defined in x86 builds only). */
enum { PT_INT8_MK_PORTABLE = 0, PT_INT8_MK_AVX2 = 1, PT_INT8_MK_AVXVNNI = 2, PT_INT8_MK_VNNI = 3 };
int pt_int8_team_microkernel(const pt_team *team);

#endif
