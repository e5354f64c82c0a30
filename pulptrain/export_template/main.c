/* On-device continual learning with latent replays: the application of a bundle written by
 * `pulptrain export`. It learns from the stream of images embedded in stream.c, batch by batch:
 *
 *   for every new image: INT8 frozen stage (pt_int8_stage_forward) -> latent codes at the buffer's bits
 *   pt_cl_learner_begin_batch -> pt_cl_learner_train_step x plan.total_steps -> pt_cl_learner_end_batch
 *   (CWR* consolidation, replay-buffer update)
 *
 * then classifies the embedded test images (frozen stage + pt_cl_learner_predict) and prints, one
 * "KEY field=value ..." line each, everything a host script compares (pulptrain/export.py parses them):
 *   BUNDLE  the configuration;  FROZEN / STEP / END  retired instructions of every phase (rv32, M4F);
 *   BATCH   per batch: loss, rows and the random generators' states after the batch;
 *   STATE   per array of the final state (adaptive weights, BatchNorm statistics, buffer, CWR*): FNV-1a 64;
 *   PRED    the test predictions;  STACK  the painted-stack high-water mark (rv32);  DONE  the status.
 * With a file name as second argument it also writes the final state arrays, concatenated in STATE order.
 *
 * Measurement bundles (tools/on_device/measure.py; export_bundle's frozen_images_run / steps_run, bundle.h) may
 * set BUNDLE_FROZEN_IMAGES_RUN = k: the stream holds the first k images of each batch, the frozen stage runs
 * for them and the other new samples reuse their latents; and BUNDLE_STEPS_RUN = k: the first k training
 * steps of a batch run, then the batch ends. Both 0 (a normal bundle): everything runs.
 *
 * Usage: app [CORES [STATE_FILE]]   CORES: the team size (1..BUNDLE_CORES; on bare metal the serial backend
 * runs the cores one after another, and each core's share of every fork is measured).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bundle.h"

/* ---- instruction counting (csrc/core/pt_counter.h): instructions on RISC-V (exact under QEMU -icount shift=0), the
 * CMSDK timers on a Cortex-M4F (mps2-an386 under QEMU -icount shift=7), nothing elsewhere ---- */
#include "pt_counter.h"

/* Per-core accounting through the serial backend's hook (as tools/riscv/count_kernels.c): the critical path
 * of a phase = its instructions outside the forks + the slowest core of each fork. */
static uint64_t core_start, fork_slowest, in_forks, forks_critical;

static void core_hook(int core_id, int begin)
{
    const uint64_t now = pt_counter_read();
    if (begin) {
        if (core_id == 0) fork_slowest = 0;
        core_start = now;
        return;
    }
    const uint64_t spent = now - core_start;
    in_forks += spent;
    if (spent > fork_slowest) {
        forks_critical += spent - fork_slowest;
        fork_slowest = spent;
    }
}

/* Empty markers inside each counted phase: the instruction-class plugin of tools/arm (insn_classes.c) counts
 * the classes between the first instructions of the two, one region per phase (kept as calls, at addresses
 * the symbol table shows). */
#if defined(__GNUC__) && !defined(__clang__)
#define PT_MARKER __attribute__((noipa))
#else
#define PT_MARKER __attribute__((noinline))
#endif
PT_MARKER void pt_region_begin(void) { __asm__ volatile(""); }
PT_MARKER void pt_region_end(void) { __asm__ volatile(""); }

typedef struct {
    uint64_t t0, in_forks0, critical0;
} phase;

static phase phase_begin(void)
{
    phase p = {0, in_forks, forks_critical};
    p.t0 = pt_counter_read();
    pt_region_begin();
    return p;
}

/* (instructions on the calling core, critical path of the team) of the phase since phase_begin. */
static void phase_end(const phase *p, uint64_t *instructions, uint64_t *critical)
{
    pt_region_end();
    const uint64_t total = pt_counter_read() - p->t0;
    *instructions = total;
    *critical = total - (in_forks - p->in_forks0) + (forks_critical - p->critical0);
}

/* ---- painted stack (bare metal with the picolibc linker script: .bss ends at __end, the stack grows down
 * from __stack): the STACK_PAINT_BYTES below main's frame are painted at start and scanned at the end ---- */
#if defined(__riscv) && defined(BUNDLE_PAINT_STACK)
extern char __end[], __stack[];
#define STACK_PAINT 0xa5u
#define STACK_PAINT_BYTES (256 * 1024)
static char *paint_bottom;
static void paint_stack(void)
{
    volatile char here;
    char *top = (char *)&here - 256;
    paint_bottom = top - __end > STACK_PAINT_BYTES ? top - STACK_PAINT_BYTES : __end;
    for (char *p = paint_bottom; p < top; p++) *p = (char)STACK_PAINT;
}
/* Bytes of stack used at the deepest (STACK_PAINT_BYTES or more when it reports the whole painted area). */
static long stack_high_water(void)
{
    const char *p = paint_bottom;
    while (p < __stack && (unsigned char)*p == STACK_PAINT) p++;
    return (long)(__stack - p);
}
#else
static void paint_stack(void) {}
static long stack_high_water(void) { return -1; }
#endif

/* ---- FNV-1a 64 of a byte array (pulptrain/export.py computes the same) ---- */
static uint64_t fnv1a64(const void *data, int64_t bytes)
{
    const uint8_t *p = (const uint8_t *)data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (int64_t i = 0; i < bytes; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static int fail(const char *what, pt_status st)
{
    printf("DONE status=error where=%s error=\"%s\"\n", what, pt_status_str(st));
    return 1;
}

static uint8_t frozen_workspace[BUNDLE_FROZEN_WORKSPACE_BYTES] __attribute__((aligned(16)));
static uint8_t batch_codes[BUNDLE_MAX_NEW * BUNDLE_LATENT_ELEMENTS];
static uint8_t test_codes[BUNDLE_LATENT_ELEMENTS];
static float test_latent[BUNDLE_LATENT_ELEMENTS];
static pt_cl_learner learner;

/* The frozen stage for one image, counted. */
static pt_status frozen_forward(const pt_team *team, const uint8_t *image, uint8_t *latent, uint64_t *instructions,
                                uint64_t *critical)
{
    const phase p = phase_begin();
    const pt_status st = pt_int8_stage_forward(team, &bundle_frozen, 1, image, latent, frozen_workspace,
                                               BUNDLE_FROZEN_WORKSPACE_BYTES);
    phase_end(&p, instructions, critical);
    return st;
}

static pt_status learn_batch(const pt_team *team, int32_t b, const uint8_t *images, const int16_t *labels, int32_t n)
{
    pt_status st = PT_OK;
    uint64_t instructions, critical, frozen_sum = 0, frozen_critical = 0;
    const int32_t computed = BUNDLE_FROZEN_IMAGES_RUN > 0 && BUNDLE_FROZEN_IMAGES_RUN < n ? BUNDLE_FROZEN_IMAGES_RUN : n;
    for (int32_t i = 0; i < computed && st == PT_OK; i++) {
        st = frozen_forward(team, images + (int64_t)i * BUNDLE_INPUT_CODES,
                            batch_codes + (int64_t)i * BUNDLE_LATENT_ELEMENTS, &instructions, &critical);
        frozen_sum += instructions;
        frozen_critical += critical;
    }
    if (st != PT_OK) return st;
    for (int32_t i = computed; i < n; i++)
        memcpy(batch_codes + (int64_t)i * BUNDLE_LATENT_ELEMENTS,
               batch_codes + (int64_t)(i % computed) * BUNDLE_LATENT_ELEMENTS, BUNDLE_LATENT_ELEMENTS);
    if (PT_COUNTER_AVAILABLE)
        printf("FROZEN batch=%d images=%d instructions=%llu critical=%llu\n", (int)b, (int)computed,
               (unsigned long long)frozen_sum, (unsigned long long)frozen_critical);
    st = pt_cl_learner_begin_batch(team, &learner, NULL, batch_codes, labels, n);
    if (st != PT_OK) return st;
    double loss_sum = 0.0;
    int32_t correct = 0, rows = 0, steps = 0;
    while (learner.step_index < learner.plan.total_steps) {
        if (BUNDLE_STEPS_RUN > 0 && steps == BUNDLE_STEPS_RUN) {
            learner.step_index = learner.plan.total_steps; /* measurement: the rest of the plan is skipped */
            break;
        }
        pt_cl_step_result r;
        const phase p = phase_begin();
        st = pt_cl_learner_train_step(team, &learner, &r);
        phase_end(&p, &instructions, &critical);
        if (st != PT_OK) return st;
        if (PT_COUNTER_AVAILABLE)
            printf("STEP batch=%d step=%d rows=%d instructions=%llu critical=%llu\n", (int)b, (int)steps, (int)r.rows,
                   (unsigned long long)instructions, (unsigned long long)critical);
        loss_sum += r.loss;
        correct += r.correct;
        rows += r.rows;
        steps++;
    }
    const phase p = phase_begin();
    st = pt_cl_learner_end_batch(team, &learner);
    phase_end(&p, &instructions, &critical);
    if (st != PT_OK) return st;
    if (PT_COUNTER_AVAILABLE)
        printf("END batch=%d images=%d instructions=%llu critical=%llu\n", (int)b, (int)n, (unsigned long long)instructions,
               (unsigned long long)critical);
    const pt_cl_buffer *buf = learner.buffer;
    printf("BATCH batch=%d images=%d new_per_step=%d replays_per_step=%d steps=%d mean_loss=%.9g train_correct=%d "
           "rows=%d buffer_size=%d learner_rng=%016llx:%016llx buffer_rng=%016llx:%016llx\n",
           (int)b, (int)n, (int)learner.plan.new_per_step, (int)learner.plan.replays_per_step, (int)steps,
           steps ? loss_sum / steps : 0.0, (int)correct, (int)rows, (int)buf->size,
           (unsigned long long)learner.rng.state, (unsigned long long)learner.rng.inc,
           (unsigned long long)buf->rng.state, (unsigned long long)buf->rng.inc);
    return PT_OK;
}

static pt_status predict_test(const pt_team *team)
{
    int32_t correct = 0;
    printf("PRED n=%d classes=", (int)BUNDLE_TEST_IMAGES);
    for (int32_t i = 0; i < BUNDLE_TEST_IMAGES; i++) {
        uint64_t instructions, critical;
        int32_t cls;
        pt_status st = frozen_forward(team, bundle_test_codes + (int64_t)i * BUNDLE_INPUT_CODES, test_codes,
                                      &instructions, &critical);
        if (st == PT_OK) st = pt_dequantize(team, BUNDLE_LATENT_ELEMENTS, test_codes, bundle_buffer.scale, test_latent);
        if (st == PT_OK) st = pt_cl_learner_predict(team, &learner, test_latent, 1, &cls);
        if (st != PT_OK) {
            printf("\n");
            return st;
        }
        printf(i ? ",%d" : "%d", (int)cls);
        correct += cls == bundle_test_labels[i];
    }
    printf(" correct=%d\n", (int)correct);
    return PT_OK;
}

static void report_state(const char *path)
{
    bundle_array arrays[BUNDLE_MAX_STATE_ARRAYS];
    const int n = bundle_state_arrays(arrays, BUNDLE_MAX_STATE_ARRAYS);
    FILE *f = path ? fopen(path, "wb") : NULL;
    if (path && !f) printf("STATE_FILE error=\"cannot open %s\"\n", path);
    for (int i = 0; i < n; i++) {
        printf("STATE name=%s bytes=%lld fnv=%016llx\n", arrays[i].name, (long long)arrays[i].bytes,
               (unsigned long long)fnv1a64(arrays[i].data, arrays[i].bytes));
        if (f && arrays[i].bytes) fwrite(arrays[i].data, 1, (size_t)arrays[i].bytes, f);
    }
    if (f) fclose(f);
}

int main(int argc, char **argv)
{
    paint_stack();
    const int cores = argc > 1 ? atoi(argv[1]) : 1;
    if (cores < 1 || cores > BUNDLE_CORES) {
        printf("DONE status=error where=arguments error=\"CORES must be 1..%d, got %s\"\n", BUNDLE_CORES, argv[1]);
        return 2;
    }
    pt_team team = pt_team_of(cores);
    team.serial_core_hook = cores > 1 && PT_COUNTER_AVAILABLE ? core_hook : NULL;
    pt_status st = bundle_start(&learner, &team);
    if (st != PT_OK) return fail("bundle_start", st);
    const pt_team full_team = pt_team_of(BUNDLE_CORES);
    printf("BUNDLE cores=%d backend=%s frozen_layers=%d adaptive_layers=%d latent_elements=%d bits=%d capacity=%d "
           "arena_bytes=%lld arena_needed=%lld arena_needed_full_team=%lld frozen_workspace_bytes=%lld batches=%d "
           "test_images=%d\n",
           cores, pt_parallel_backend(), (int)bundle_frozen.num_layers, (int)BUNDLE_NUM_LAYERS,
           (int)BUNDLE_LATENT_ELEMENTS, (int)bundle_buffer.bits, (int)bundle_buffer.capacity,
           (long long)BUNDLE_ARENA_BYTES, (long long)bundle_arena_needed(&team),
           (long long)bundle_arena_needed(&full_team), (long long)BUNDLE_FROZEN_WORKSPACE_BYTES,
           (int)BUNDLE_STREAM_BATCHES, (int)BUNDLE_TEST_IMAGES);
    int64_t images = 0, labels = 0; /* where the batch starts in the embedded images and labels */
    for (int32_t b = 0; b < BUNDLE_STREAM_BATCHES; b++) {
        const int32_t n = bundle_batch_sizes[b];
        st = learn_batch(&team, (int32_t)learner.batches_seen, bundle_stream_codes + images * BUNDLE_INPUT_CODES,
                         bundle_stream_labels + labels, n);
        if (st != PT_OK) return fail("learn_batch", st);
        images += BUNDLE_FROZEN_IMAGES_RUN > 0 && BUNDLE_FROZEN_IMAGES_RUN < n ? BUNDLE_FROZEN_IMAGES_RUN : n;
        labels += n;
    }
    st = predict_test(&team);
    if (st != PT_OK) return fail("predict", st);
    report_state(argc > 2 ? argv[2] : NULL);
    printf("STACK high_water=%ld\n", stack_high_water());
    printf("DONE status=ok\n");
    return 0;
}
