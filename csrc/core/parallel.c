#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-tree-loop-distribute-patterns") /* pt_team_status_clear stays a store loop */
#endif
#include <stddef.h>
#include "parallel.h"
#include "matmul.h"
#include "depthwise_conv2d.h"
#include "int8_gemm.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* The default team size (pt_team_default; the matmul and INT8 defaults live in matmul.c and int8_gemm.c).
 * No kernel reads it: kernels run with the pt_team they are given. */
static int default_num_threads = 1;
#ifndef _OPENMP
/* The serial backend's fork in progress (bare metal runs one hart, so one fork at a time). */
static int serial_core_id = 0;
static int serial_team_size = 1;
#endif

pt_team pt_team_of(int num_threads)
{
    pt_team team = {num_threads, PT_MATMUL_AUTO, PT_INT8_MICROKERNEL_AUTO, PT_DEPTHWISE_AUTO, NULL, PT_ISA_AUTO};
    return team;
}

pt_status pt_team_check(const pt_team *team)
{
    if (team == NULL) return PT_ERR_NULL_POINTER;
    if (team->num_threads < 1 || team->num_threads > PT_MAX_THREADS) return PT_ERR_BAD_ARGUMENT;
    if (team->matmul_variant != PT_MATMUL_AUTO && pt_matmul_variant_info(team->matmul_variant) == NULL)
        return PT_ERR_UNKNOWN_VARIANT;
    if (team->int8_microkernel != PT_INT8_MICROKERNEL_AUTO && pt_int8_microkernel_name(team->int8_microkernel) == NULL)
        return PT_ERR_UNKNOWN_VARIANT;
    if (team->isa_level < PT_ISA_AUTO || team->isa_level > pt_isa_detected()) return PT_ERR_BAD_ARGUMENT;
    if (team->depthwise_tier != PT_DEPTHWISE_AUTO && pt_depthwise_tier_name(team->depthwise_tier) == NULL)
        return PT_ERR_UNKNOWN_VARIANT;
    return PT_OK;
}

pt_team pt_team_default(void)
{
    pt_team team = {default_num_threads, pt_matmul_get_preferred(), pt_int8_get_default_microkernel(),
                    pt_depthwise_get_default_tier(), NULL, pt_isa_get_default()};
    return team;
}

pt_status pt_set_num_threads(int n)
{
    if (n < 1 || n > PT_MAX_THREADS) return PT_ERR_BAD_ARGUMENT;
    default_num_threads = n;
    return PT_OK;
}

int pt_get_num_threads(void) { return default_num_threads; }

#ifdef _OPENMP
const char *pt_parallel_backend(void) { return "openmp"; }

void pt_parallel(const pt_team *team, pt_task_fn fn, void *args)
{
    const int team_size = team->num_threads;
    if (team_size == 1) {
        fn(args);
        return;
    }
#pragma omp parallel num_threads(team_size)
    fn(args);
}

int pt_core_id(void) { return omp_get_thread_num(); }
int pt_num_cores(void) { return omp_get_num_threads(); }
#else
const char *pt_parallel_backend(void) { return "serial"; }

void pt_parallel(const pt_team *team, pt_task_fn fn, void *args)
{
    const pt_core_hook_fn hook = team->serial_core_hook;
    serial_team_size = team->num_threads;
    for (int id = 0; id < serial_team_size; id++) {
        serial_core_id = id;
        if (hook) hook(id, 1);
        fn(args);
        if (hook) hook(id, 0);
    }
    serial_core_id = 0;
    serial_team_size = 1;
}

int pt_core_id(void) { return serial_core_id; }
int pt_num_cores(void) { return serial_team_size; }
#endif

void pt_chunk(int64_t n, int64_t granule, int64_t *begin, int64_t *end)
{
    int64_t cores = pt_num_cores(), id = pt_core_id();
    if (granule < 1) granule = 1;
    int64_t units = (n + granule - 1) / granule;
    int64_t base = units / cores, extra = units % cores;
    int64_t first = id * base + (id < extra ? id : extra);
    int64_t count = base + (id < extra ? 1 : 0);
    int64_t b = first * granule, e = (first + count) * granule;
    if (b > n) b = n;
    if (e > n) e = n;
    *begin = b;
    *end = e;
}

/* Both run once per fork over all PT_MAX_THREADS slots: unrolled stores and one branch-free pass (a loop that
 * GCC turns into a memset call cost ~4,000 instructions per fork on rv32, whose picolibc memset stores bytes). */
void pt_team_status_clear(pt_team_status *ts)
{
    _Pragma("GCC unroll 8") for (int i = 0; i < PT_MAX_THREADS; i++) ts->slot[i] = PT_OK;
}

void pt_team_status_report(pt_team_status *ts, pt_status status)
{
    if (status != PT_OK) ts->slot[pt_core_id()] = status;
}

pt_status pt_team_status_result(const pt_team_status *ts)
{
    _Static_assert(PT_OK == 0, "a slot's bits are all zero when it holds PT_OK");
    int failed = 0;
    _Pragma("GCC unroll 16") for (int i = 0; i < PT_MAX_THREADS; i++) failed |= (int)ts->slot[i];
    if (failed)
        for (int i = 0; i < PT_MAX_THREADS; i++)
            if (ts->slot[i] != PT_OK) return ts->slot[i];
    return PT_OK;
}
