#include <stddef.h>
#include "parallel.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* The only mutable globals in csrc: the parallel runtime's settings. */
static int team_size = 1;
static pt_core_hook_fn serial_core_hook = NULL;
#ifndef _OPENMP
static int serial_core_id = 0;
static int serial_team_size = 1;
#endif

void pt_set_num_threads(int n)
{
    if (n < 1) n = 1;
    if (n > PT_MAX_THREADS) n = PT_MAX_THREADS;
    team_size = n;
}

int pt_get_num_threads(void) { return team_size; }

void pt_set_serial_core_hook(pt_core_hook_fn hook) { serial_core_hook = hook; }

#ifdef _OPENMP
const char *pt_parallel_backend(void) { return "openmp"; }

void pt_parallel(pt_task_fn fn, void *args)
{
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

void pt_parallel(pt_task_fn fn, void *args)
{
    serial_team_size = team_size;
    for (int id = 0; id < serial_team_size; id++) {
        serial_core_id = id;
        if (serial_core_hook) serial_core_hook(id, 1);
        fn(args);
        if (serial_core_hook) serial_core_hook(id, 0);
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

void pt_team_status_clear(pt_team_status *ts)
{
    for (int i = 0; i < PT_MAX_THREADS; i++) ts->slot[i] = PT_OK;
}

void pt_team_status_report(pt_team_status *ts, pt_status status)
{
    if (status != PT_OK) ts->slot[pt_core_id()] = status;
}

pt_status pt_team_status_result(const pt_team_status *ts)
{
    for (int i = 0; i < PT_MAX_THREADS; i++)
        if (ts->slot[i] != PT_OK) return ts->slot[i];
    return PT_OK;
}
