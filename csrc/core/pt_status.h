/* Status codes returned by every pulptrain kernel. Kernels never print or abort. */
#ifndef PT_STATUS_H
#define PT_STATUS_H

typedef enum {
    PT_OK = 0,
    PT_ERR_NULL_POINTER = 1,     /* a required pointer argument is NULL */
    PT_ERR_BAD_SHAPE = 2,        /* a dimension is < 1 or shapes disagree */
    PT_ERR_BAD_ARGUMENT = 3,     /* stride < 1, padding < 0, bits out of range, ... */
    PT_ERR_WORKSPACE_TOO_SMALL = 4,
    PT_ERR_UNKNOWN_VARIANT = 5,  /* matmul variant id out of range */
    PT_ERR_VALUE_OUT_OF_RANGE = 6 /* a data value (e.g. a code) does not fit */
} pt_status;

/* Human-readable text for a status; never NULL. */
const char *pt_status_str(pt_status status);

#endif
