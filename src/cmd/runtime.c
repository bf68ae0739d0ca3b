#include "runtime.h"

#include <stdio.h>
#include <string.h>

#include "check.h"
#ifdef FP_HAVE_COLLECTIVE
#include "collective.h"
#endif

/* The collective that goes with the backend's memory (MPI for host memory, NCCL for device),
 * its device calls ordered after the backend's stream. */
static collective *open_collective(const backend *be) {
#ifdef FP_HAVE_COLLECTIVE
  collective *comm = collective_init(be->device_memory ? COLLECTIVE_NCCL : COLLECTIVE_MPI);
  if (be->device_memory) collective_set_device_stream(comm, be->device_stream());
  return comm;
#else
  FP_FATAL("this program was built without MPI (FP_GPU_CHECK_BUILD): no collective for %s",
           be->name);
#endif
}

/* The precisions a user can ask for by name. */
static const struct {
  const char *name;
  fp_dtype type;
} precisions[] = {{"fp32", FP_F32}, {"bf16", FP_BF16}, {"fp16", FP_F16}};

static fp_dtype choose_precision(const backend *be, const char *name, const char *origin,
                                 char *reason, size_t reason_size) {
  char why[200];
  if (!strcmp(name, "fp32")) {
    snprintf(reason, reason_size, "asked for fp32");
    return FP_F32;
  }
  for (size_t p = 1; p < sizeof precisions / sizeof *precisions; p++) {
    if (strcmp(name, precisions[p].name)) continue;
    if (be->dtype_support(precisions[p].type, why, sizeof why) == DTYPE_NOT_NATIVE)
      FP_FATAL("%s: precision %s (model.precision=%s / --precision %s) is not available on "
               "backend %s: %s; use fp32 or auto",
               origin, name, name, name, be->name, why);
    snprintf(reason, reason_size, "asked for %s; %s", name, why);
    return precisions[p].type;
  }
  FP_CHECK(!strcmp(name, "auto"),
           "%s: precision '%s' (model.precision / --precision) must be auto, fp32, bf16 or fp16",
           origin, name);
  dtype_support bf16 = be->dtype_support(FP_BF16, why, sizeof why);
  snprintf(reason, reason_size, "auto: %s", why);
  return bf16 == DTYPE_FASTER ? FP_BF16 : FP_F32;
}

runtime runtime_open(const char *backend_name, const char *precision_name, const char *origin,
                     int with_collective) {
  runtime rt;
  memset(&rt, 0, sizeof rt);
  rt.be = backend_open(backend_name, rt.backend_reason, sizeof rt.backend_reason);
  if (!rt.be) FP_FATAL("%s: backend (model.backend / --backend): %s", origin, rt.backend_reason);
  if (with_collective) rt.comm = open_collective(rt.be);
  rt.compute = choose_precision(rt.be, precision_name, origin, rt.precision_reason,
                                sizeof rt.precision_reason);
  return rt;
}

const char *runtime_precision_name(fp_dtype compute) {
  for (size_t p = 0; p < sizeof precisions / sizeof *precisions; p++)
    if (precisions[p].type == compute) return precisions[p].name;
  return "?";
}

void runtime_describe(const runtime *rt, char *text, size_t size) {
  snprintf(text, size, "backend=%s%s%s%s precision=%s (%s)", rt->be->name,
           rt->backend_reason[0] ? " (" : "", rt->backend_reason, rt->backend_reason[0] ? ")" : "",
           runtime_precision_name(rt->compute), rt->precision_reason);
}
