/* The SPMD fork that stands in for the PULP cluster.
 *
 * pt_parallel(fn, args) runs fn(args) once per core of the team. Inside fn, pt_core_id() and
 * pt_num_cores() say which slice of the *output* this core computes; pt_chunk() splits a range evenly.
 * Backends: OpenMP (when compiled with -fopenmp) runs the team as threads; the serial backend (bare metal)
 * runs core 0, then core 1, ... one after another, so kernels must not wait on each other inside fn.
 * Kernels never split a reduction across cores, so results are bitwise identical for any team size.
 */
#ifndef PT_PARALLEL_H
#define PT_PARALLEL_H

#include <stdint.h>
#include "pt_status.h"

typedef void (*pt_task_fn)(void *args);

#define PT_MAX_THREADS 256

void pt_parallel(pt_task_fn fn, void *args);
int pt_core_id(void);
int pt_num_cores(void);

/* Team size used by the next pt_parallel (clamped to 1..PT_MAX_THREADS). */
void pt_set_num_threads(int n);
int pt_get_num_threads(void);

/* "openmp" or "serial". */
const char *pt_parallel_backend(void);

/* Optional observer for the serial backend (bare metal), e.g. to count instructions per virtual core:
 * called with begin = 1 just before and begin = 0 just after each core runs its share of a fork.
 * NULL (the default) disables it; the OpenMP backend never calls it. A runtime setting, like the team size. */
typedef void (*pt_core_hook_fn)(int core_id, int begin);
void pt_set_serial_core_hook(pt_core_hook_fn hook);

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
