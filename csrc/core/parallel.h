/* The SPMD fork that stands in for the PULP cluster, and the runtime settings a call runs with.
 *
 * Every kernel takes a `const pt_team *team`: the team size and the variant choices of that one call. A
 * kernel reads no global setting, so a caller sizes the workspace from the same values the kernel uses,
 * and calls on other threads with other teams cannot change them mid-call (pt_team_default() gives the
 * process-wide defaults that the Python binding snapshots once per call).
 *
 * pt_parallel(team, fn, args) runs fn(args) once per core of the team. Inside fn, pt_core_id() and
 * pt_num_cores() say which slice of the *output* this core computes; pt_chunk() splits a range evenly.
 * Backends: OpenMP (when compiled with -fopenmp) runs the team as threads; the serial backend (bare metal)
 * runs core 0, then core 1, ... one after another, so kernels must not wait on each other inside fn.
 * Kernels never split a reduction across cores, so results are bitwise identical for any team size.
 */
#ifndef PT_PARALLEL_H
#define PT_PARALLEL_H

#include <stdint.h>
#include "pt_status.h"
#include "isa.h"

typedef void (*pt_task_fn)(void *args);

#define PT_MAX_THREADS 256
#define PT_MATMUL_AUTO (-1)          /* pt_team.matmul_variant: the per-shape rule (matmul.h) */
#define PT_INT8_MICROKERNEL_AUTO (-1) /* pt_team.int8_microkernel: the fastest available (int8_gemm.h) */
#define PT_DEPTHWISE_AUTO (-1)        /* pt_team.depthwise_tier: the best tier for the shape (depthwise_conv2d.h) */

/* Optional observer for the serial backend (bare metal), e.g. to count instructions per virtual core:
 * called with begin = 1 just before and begin = 0 just after each core runs its share of a fork.
 * The OpenMP backend never calls it. */
typedef void (*pt_core_hook_fn)(int core_id, int begin);

/* The settings of one kernel call (a plain value: copy it, keep one per calling thread). */
typedef struct {
    int num_threads;                  /* cores in the team, 1..PT_MAX_THREADS */
    int matmul_variant;               /* PT_MATMUL_AUTO or a matmul registry index (pt_matmul_variant_info) */
    int int8_microkernel;             /* PT_INT8_MICROKERNEL_AUTO or an index of pt_int8_microkernel_name */
    int depthwise_tier;               /* PT_DEPTHWISE_AUTO or an index of pt_depthwise_tier_name */
    pt_core_hook_fn serial_core_hook; /* NULL: none */
    int isa_level;                    /* PT_ISA_AUTO or the level (isa.h) the automatic choices use, up to the CPU's */
} pt_team;

/* A team of num_threads cores with the automatic choices and no hook. */
pt_team pt_team_of(int num_threads);
/* PT_OK, or why `team` cannot run a kernel: NULL, a team size out of range, an unknown variant, an ISA level
 * above the CPU's. Every kernel checks its team first; workspace queries return 0 for a bad team. */
pt_status pt_team_check(const pt_team *team);
#define PT_RETURN_IF_BAD_TEAM(team)                         \
    do {                                                    \
        const pt_status team_status_ = pt_team_check(team); \
        if (team_status_ != PT_OK) return team_status_;     \
    } while (0)

/* The process-wide defaults, for callers that keep one setting for every call (the Python binding):
 * a snapshot of pt_set_num_threads, pt_matmul_set_preferred, pt_int8_set_microkernel,
 * pt_depthwise_set_default_tier and pt_isa_set_default, no hook.
 * Setting them while another thread runs a kernel is safe: that kernel uses its own copy. */
pt_team pt_team_default(void);
/* PT_ERR_BAD_ARGUMENT unless 1 <= n <= PT_MAX_THREADS. */
pt_status pt_set_num_threads(int n);
int pt_get_num_threads(void);

void pt_parallel(const pt_team *team, pt_task_fn fn, void *args);
int pt_core_id(void);
int pt_num_cores(void);

/* "openmp" or "serial". */
const char *pt_parallel_backend(void);

/* This core's share [*begin, *end) of n items, in contiguous blocks whose size is a multiple of
 * `granule` (except the last); cores beyond the work get an empty range. */
void pt_chunk(int64_t n, int64_t granule, int64_t *begin, int64_t *end);

/* Per-core status slots for one fork: a core records only its own failure, so there is no race. */
typedef struct {
    pt_status slot[PT_MAX_THREADS];
} pt_team_status;

void pt_team_status_clear(pt_team_status *ts);
/* Called inside a task: records a failure of the calling core (PT_OK is ignored). */
void pt_team_status_report(pt_team_status *ts, pt_status status);
/* After the fork: the first failure by core id, or PT_OK. */
pt_status pt_team_status_result(const pt_team_status *ts);

#endif
