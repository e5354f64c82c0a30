/* A QEMU TCG plugin that counts the retired instructions of marked regions by class, for the cost model's
 * instruction mix (pulptrain/energy.py): alu (integer data processing, multiply, divide, other), load_store
 * (integer loads and stores, load/store multiple, push/pop), branch (branches, calls, returns), fp_load_store
 * (FP loads and stores), fp_arith (other FP instructions, FP <-> core moves) and fp_fma (fused and chained
 * multiply-accumulates). It decodes Thumb-2 (Cortex-M4 + FPv4-SP) and RV32IMFC.
 *
 * A region runs from the first instruction of one marker function to the first instruction of another
 * (both noipa, addresses from nm): every translation block executed in between is added with its class
 * counts, the marker's own first block included (a small constant, the same for every region).
 *
 *   qemu-system-arm ... -plugin build/arm/insn_classes.so,isa=thumb,begin=0x...,end=0x... -d plugin -D LOG
 *
 * prints one line per region into LOG (QEMU prints plugin output only with -d plugin):
 *   INSN_CLASSES region=N total=T alu=A load_store=L branch=B fp_load_store=F fp_arith=P fp_fma=M
 * Debian's QEMU ships no qemu-plugin.h: the few API functions used are declared below (plugin API version 1,
 * QEMU 7.x; tests/test_arm_counter.py checks the totals against loops of known length).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the QEMU plugin API (include/qemu/qemu-plugin.h of QEMU 7.2) ---- */
typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
void qemu_plugin_outs(const char *string);
__attribute__((visibility("default"))) int qemu_plugin_version = 1;

/* ---- instruction classes ---- */
enum { ALU, LOAD_STORE, BRANCH, FP_LOAD_STORE, FP_ARITH, FP_FMA, NUM_CLASSES };
static const char *const class_names[NUM_CLASSES] = {"alu", "load_store", "branch", "fp_load_store", "fp_arith",
                                                     "fp_fma"};

/* Thumb-2 (ARMv7E-M + FPv4-SP), after the ARMv7-M Architecture Reference Manual's encoding tables (A5). */
static int thumb_class(const uint8_t *bytes, size_t size)
{
    const uint32_t hw1 = bytes[0] | (uint32_t)bytes[1] << 8;
    if (size == 2) {
        if ((hw1 & 0xff00) == 0x4700) return BRANCH; /* BX, BLX */
        if ((hw1 >> 11) == 0x09) return LOAD_STORE; /* LDR literal */
        if ((hw1 >> 12) == 0x5 || (hw1 >> 13) == 0x3 || (hw1 >> 12) == 0x8 || (hw1 >> 12) == 0x9) return LOAD_STORE;
        if ((hw1 >> 12) == 0xb) {
            if ((hw1 & 0x0600) == 0x0400) return (hw1 & 0x0900) == 0x0900 ? BRANCH : LOAD_STORE; /* POP {..pc}; PUSH/POP */
            if ((hw1 & 0x0500) == 0x0100) return BRANCH; /* CBZ, CBNZ */
            return ALU;
        }
        if ((hw1 >> 12) == 0xc) return LOAD_STORE; /* LDM, STM */
        if ((hw1 >> 12) == 0xd) return (hw1 & 0x0e00) == 0x0e00 ? ALU : BRANCH; /* B<cond>; UDF, SVC */
        if ((hw1 >> 11) == 0x1c) return BRANCH; /* B */
        return ALU;
    }
    const uint32_t hw2 = bytes[2] | (uint32_t)bytes[3] << 8;
    const uint32_t op1 = (hw1 >> 11) & 3, op2 = (hw1 >> 4) & 0x7f;
    if ((hw1 & 0xec00) == 0xec00) { /* coprocessor space */
        if (((hw2 >> 9) & 7) != 5) return ALU; /* not the FPU (coprocessors 10, 11) */
        if ((op2 & 0x20) == 0) return (op2 & 0x3e) == 0x04 ? FP_ARITH : FP_LOAD_STORE; /* VMOV 2 regs; VLDR.. */
        if ((op2 & 0x30) == 0x20 && (hw2 & 0x10) == 0) { /* FP data processing: opc1 = hw1[7:4] */
            const uint32_t opc1 = (hw1 >> 4) & 0xb;
            return opc1 == 0x0 || opc1 == 0x1 || opc1 == 0xa || opc1 == 0x9 ? FP_FMA : FP_ARITH; /* VMLA/VNMLA, VFMA/VFNMA */
        }
        return FP_ARITH; /* VMOV core <-> FP, VMRS, VMSR */
    }
    if (op1 == 1) {
        if ((op2 & 0x64) == 0x00) return LOAD_STORE; /* load/store multiple */
        if ((op2 & 0x64) == 0x04) {
            if ((hw1 & 0xfff0) == 0xe8d0 && (hw2 & 0x00e0) == 0x0000) return BRANCH; /* TBB, TBH */
            return LOAD_STORE; /* load/store dual, exclusive */
        }
        return ALU; /* data processing (shifted register) */
    }
    if (op1 == 2) return (hw2 & 0x8000) ? BRANCH : ALU; /* branches and misc control; data processing (imm) */
    if ((op2 & 0x60) == 0x00) return LOAD_STORE; /* load/store single */
    return ALU; /* data processing (register), multiply, long multiply, divide */
}

/* RV32IMFC (the unprivileged spec's opcode maps). */
static int riscv_class(const uint8_t *bytes, size_t size)
{
    const uint32_t lo = bytes[0] | (uint32_t)bytes[1] << 8;
    if (size == 2) {
        const uint32_t quadrant = lo & 3, funct3 = lo >> 13;
        if (quadrant == 0) return funct3 == 2 || funct3 == 6 ? LOAD_STORE : funct3 == 0 ? ALU : FP_LOAD_STORE;
        if (quadrant == 1) return funct3 == 1 || funct3 == 5 || funct3 == 6 || funct3 == 7 ? BRANCH : ALU;
        if (funct3 == 2 || funct3 == 6) return LOAD_STORE; /* c.lwsp, c.swsp */
        if (funct3 == 1 || funct3 == 3 || funct3 == 5 || funct3 == 7) return FP_LOAD_STORE;
        if (funct3 == 4 && ((lo >> 2) & 0x1f) == 0 && ((lo >> 7) & 0x1f) != 0) return BRANCH; /* c.jr, c.jalr */
        return ALU;
    }
    switch (lo & 0x7f) {
    case 0x03: case 0x23: return LOAD_STORE;
    case 0x07: case 0x27: return FP_LOAD_STORE;
    case 0x63: case 0x67: case 0x6f: return BRANCH;
    case 0x43: case 0x47: case 0x4b: case 0x4f: return FP_FMA;
    case 0x53: return FP_ARITH;
    default: return ALU;
    }
}

/* ---- regions ---- */
typedef struct {
    uint64_t vaddr;
    uint64_t counts[NUM_CLASSES];
} block_info;

static uint64_t begin_addr, end_addr;
static int (*classify)(const uint8_t *, size_t);
static bool in_region;
static uint64_t region_counts[NUM_CLASSES];
static unsigned regions;

static void report_region(void)
{
    char line[256];
    uint64_t total = 0;
    for (int c = 0; c < NUM_CLASSES; c++) total += region_counts[c];
    int n = snprintf(line, sizeof line, "INSN_CLASSES region=%u total=%" PRIu64, regions, total);
    for (int c = 0; c < NUM_CLASSES && n < (int)sizeof line; c++)
        n += snprintf(line + n, sizeof line - n, " %s=%" PRIu64, class_names[c], region_counts[c]);
    snprintf(line + n, sizeof line - n, "\n");
    qemu_plugin_outs(line);
}

static void block_exec(unsigned int vcpu_index, void *userdata)
{
    (void)vcpu_index;
    const block_info *b = userdata;
    if (b->vaddr == end_addr && in_region) {
        report_region();
        regions++;
        in_region = false;
    }
    if (b->vaddr == begin_addr) {
        in_region = true;
        memset(region_counts, 0, sizeof region_counts);
    }
    if (in_region)
        for (int c = 0; c < NUM_CLASSES; c++) region_counts[c] += b->counts[c];
}

static void block_translated(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    block_info *b = calloc(1, sizeof *b); /* lives as long as QEMU may execute the block */
    if (b == NULL) return;
    b->vaddr = qemu_plugin_tb_vaddr(tb);
    for (size_t i = 0; i < qemu_plugin_tb_n_insns(tb); i++) {
        const struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        b->counts[classify(qemu_plugin_insn_data(insn), qemu_plugin_insn_size(insn))]++;
    }
    qemu_plugin_register_vcpu_tb_exec_cb(tb, block_exec, QEMU_PLUGIN_CB_NO_REGS, b);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                                               int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "begin=", 6) == 0) begin_addr = strtoull(argv[i] + 6, NULL, 0) & ~1ull;
        else if (strncmp(argv[i], "end=", 4) == 0) end_addr = strtoull(argv[i] + 4, NULL, 0) & ~1ull;
        else if (strcmp(argv[i], "isa=thumb") == 0) classify = thumb_class;
        else if (strcmp(argv[i], "isa=riscv") == 0) classify = riscv_class;
        else {
            fprintf(stderr, "insn_classes: unknown argument %s (begin=ADDR end=ADDR isa=thumb|riscv)\n", argv[i]);
            return -1;
        }
    }
    if (!begin_addr || !end_addr || classify == NULL) {
        fprintf(stderr, "insn_classes: needs begin=ADDR, end=ADDR and isa=thumb|riscv\n");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, block_translated);
    return 0;
}
