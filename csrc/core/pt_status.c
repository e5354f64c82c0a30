#include "pt_status.h"

const char *pt_status_str(pt_status status)
{
    switch (status) {
    case PT_OK: return "ok";
    case PT_ERR_NULL_POINTER: return "null pointer argument";
    case PT_ERR_BAD_SHAPE: return "bad or inconsistent shape";
    case PT_ERR_BAD_ARGUMENT: return "bad argument";
    case PT_ERR_WORKSPACE_TOO_SMALL: return "workspace too small";
    case PT_ERR_UNKNOWN_VARIANT: return "unknown matmul variant";
    case PT_ERR_VALUE_OUT_OF_RANGE: return "value out of range";
    }
    return "unknown status";
}
