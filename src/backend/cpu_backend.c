/* CPU backend: the engine, memory, descriptors, reorders, tensor I/O and the op table. The ops
 * themselves are in cpu_conv.c, cpu_norm.c, cpu_elementwise.c and cpu_loss.c. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "cpu_internal.h"

cpu_state cpu;

/* ---------------------------------------------------------------- memory */

void *cpu_alloc_bytes(size_t bytes) {
  void *p = NULL;
  size_t rounded = (bytes + 63) / 64 * 64;
  if (posix_memalign(&p, 64, rounded ? rounded : 64) != 0)
    FP_FATAL("out of memory allocating %zu bytes", bytes);
  memset(p, 0, rounded);
  return p;
}

void *cpu_workspace(int slot, size_t bytes) {
  if (cpu.workspace_bytes[slot] < bytes) {
    free(cpu.workspace[slot]);
    cpu.workspace[slot] = cpu_alloc_bytes(bytes);
    cpu.workspace_bytes[slot] = bytes;
  }
  return cpu.workspace[slot];
}

static void *cpu_alloc(fp_dtype type, size_t count) {
  return cpu_alloc_bytes(count * fp_dtype_size(type));
}

static void cpu_release(void *p) {
  free(p);
}

static void cpu_fill_zero(void *p, fp_dtype type, size_t count) {
  memset(p, 0, count * fp_dtype_size(type));
}

static void cpu_copy(void *dst, const void *src, fp_dtype type, size_t count) {
  if (dst != src) memcpy(dst, src, count * fp_dtype_size(type));
}

static void *cpu_host_alloc(size_t bytes) {
  return fp_calloc(1, bytes);
}

static void cpu_download_async(void *host_dst, const void *src, fp_dtype type, size_t count,
                               int fence) {
  FP_CHECK(fence >= 0 && fence < BACKEND_FENCES, "download_async: fence %d", fence);
  cpu_copy(host_dst, src, type, count);
}

static void cpu_download_wait(int fence) {
  FP_CHECK(fence >= 0 && fence < BACKEND_FENCES, "download_wait: fence %d", fence);
}

/* ------------------------------------------------------------ descriptors */

shape_key make_shape_key(int kind, const tensor *t) {
  shape_key key;
  memset(&key, 0, sizeof key);
  key.kind = kind;
  key.dtype = (int)t->dtype;
  key.n = t->n;
  key.c = t->c;
  key.h = t->h;
  key.w = t->w;
  return key;
}

dnnl_data_type_t dnnl_type(fp_dtype type) {
  switch (type) {
  case FP_U8:
    return dnnl_u8;
  case FP_F32:
    return dnnl_f32;
  case FP_BF16:
    return dnnl_bf16;
  case FP_F16:
    return dnnl_f16;
  case FP_F64:
    break;
  }
  FP_FATAL("the CPU backend has no %s tensors", fp_dtype_name(type));
}

static dnnl_format_tag_t activation_tag(int channels) {
  if (channels % cpu.channel_block != 0) return dnnl_nchw;
  return cpu.channel_block == 16 ? dnnl_nChw16c : dnnl_nChw8c;
}

dnnl_memory_desc_t md_by_tag(int ndims, const dnnl_dim_t *dims, dnnl_data_type_t type,
                             dnnl_format_tag_t tag) {
  dnnl_memory_desc_t md;
  memset(&md, 0, sizeof md);
  /* The API takes a full dnnl_dims_t; passing a shorter array trips -Wstringop-overread. */
  dnnl_dims_t full_dims = {0};
  memcpy(full_dims, dims, (size_t)ndims * sizeof(dnnl_dim_t));
  DNNL_CHECK(dnnl_memory_desc_init_by_tag(&md, ndims, full_dims, type, tag));
  return md;
}

dnnl_memory_desc_t md_4d(fp_dtype type, int n, int c, int h, int w, dnnl_format_tag_t tag) {
  dnnl_dim_t dims[4] = {n, c, h, w};
  return md_by_tag(4, dims, dnnl_type(type), tag);
}

dnnl_memory_desc_t activation_md(const tensor *t) {
  return md_4d(t->dtype, t->n, t->c, t->h, t->w, activation_tag(t->c));
}

dnnl_memory_desc_t plain_md(const tensor *t, fp_dtype type) {
  return md_4d(type, t->n, t->c, t->h, t->w, dnnl_nchw);
}

dnnl_memory_desc_t any_md(const tensor *t) {
  return md_4d(t->dtype, t->n, t->c, t->h, t->w, dnnl_format_tag_any);
}

dnnl_memory_desc_t vector_md(int length) {
  dnnl_dim_t dims[1] = {length};
  return md_by_tag(1, dims, dnnl_f32, dnnl_a);
}

dnnl_memory_desc_t query_md(const_dnnl_primitive_desc_t pd, dnnl_query_t what) {
  const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, what, 0);
  FP_CHECK(md != NULL, "oneDNN: primitive has no memory descriptor for query %d", (int)what);
  return *md;
}

dnnl_primitive_t make_primitive(const void *op_desc, const_dnnl_primitive_desc_t hint,
                                dnnl_primitive_desc_t *pd_out) {
  return make_primitive_with_attr(op_desc, NULL, hint, pd_out);
}

dnnl_primitive_t make_primitive_with_attr(const void *op_desc, const_dnnl_primitive_attr_t attr,
                                          const_dnnl_primitive_desc_t hint,
                                          dnnl_primitive_desc_t *pd_out) {
  dnnl_primitive_desc_t pd;
  DNNL_CHECK(dnnl_primitive_desc_create(&pd, op_desc, attr, cpu.engine, hint));
  const char *impl = NULL;
  DNNL_CHECK(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl));
  if (impl && strncmp(impl, "ref", 3) == 0) cpu.reference_primitives++;
  dnnl_primitive_t prim;
  DNNL_CHECK(dnnl_primitive_create(&prim, pd));
  if (pd_out)
    *pd_out = pd;
  else
    DNNL_CHECK(dnnl_primitive_desc_destroy(pd));
  return prim;
}

void execute(dnnl_primitive_t prim, int count, const exec_arg *args) {
  dnnl_exec_arg_t dnnl_args[16];
  FP_CHECK(count <= 16, "too many primitive arguments");
  for (int i = 0; i < count; i++) {
    dnnl_args[i].arg = args[i].arg;
    DNNL_CHECK(
        dnnl_memory_create(&dnnl_args[i].memory, args[i].md, cpu.engine, (void *)args[i].ptr));
  }
  DNNL_CHECK(dnnl_primitive_execute(prim, cpu.stream, count, dnnl_args));
  DNNL_CHECK(dnnl_stream_wait(cpu.stream));
  for (int i = 0; i < count; i++) DNNL_CHECK(dnnl_memory_destroy(dnnl_args[i].memory));
}

/* ---------------------------------------------------------------- reorder */

typedef struct reorder_key {
  int kind;
  dnnl_memory_desc_t src, dst;
} reorder_key;

void reorder(const dnnl_memory_desc_t *src_md, const void *src, const dnnl_memory_desc_t *dst_md,
             void *dst) {
  reorder_key key;
  memset(&key, 0, sizeof key);
  key.kind = OP_REORDER;
  key.src = *src_md;
  key.dst = *dst_md;
  dnnl_primitive_t prim = primitive_cache_find(&cpu.cache, &key, sizeof key);
  if (!prim) {
    dnnl_primitive_desc_t pd;
    DNNL_CHECK(
        dnnl_reorder_primitive_desc_create(&pd, src_md, cpu.engine, dst_md, cpu.engine, NULL));
    const char *impl = NULL;
    DNNL_CHECK(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl));
    if (impl && strncmp(impl, "ref", 3) == 0) cpu.reference_primitives++;
    DNNL_CHECK(dnnl_primitive_create(&prim, pd));
    DNNL_CHECK(dnnl_primitive_desc_destroy(pd));
    primitive_cache_insert(&cpu.cache, &key, sizeof key, prim);
  }
  exec_arg args[2] = {{DNNL_ARG_FROM, src_md, src}, {DNNL_ARG_TO, dst_md, dst}};
  execute(prim, 2, args);
}

void staging_init(staging *s, dnnl_memory_desc_t stored, dnnl_memory_desc_t wanted) {
  s->stored = stored;
  s->wanted = wanted;
  s->differs = !dnnl_memory_desc_equal(&stored, &wanted);
  s->buffer = s->differs ? cpu_alloc_bytes(dnnl_memory_desc_get_size(&wanted)) : NULL;
}

const void *staging_in(staging *s, const void *stored_ptr) {
  if (!s->differs) return stored_ptr;
  reorder(&s->stored, stored_ptr, &s->wanted, s->buffer);
  return s->buffer;
}

void *staging_out(staging *s, void *stored_ptr) {
  return s->differs ? s->buffer : stored_ptr;
}

void staging_out_done(staging *s, void *stored_ptr) {
  if (s->differs) reorder(&s->wanted, s->buffer, &s->stored, stored_ptr);
}

/* ----------------------------------------------------- tensors and types */

static size_t cpu_tensor_bytes(const tensor *t) {
  dnnl_memory_desc_t md = activation_md(t);
  return dnnl_memory_desc_get_size(&md);
}

static void cpu_tensor_alloc(tensor *t) {
  t->data = cpu_alloc_bytes(cpu_tensor_bytes(t));
}

static void cpu_tensor_release(tensor *t) {
  free(t->data);
  t->data = NULL;
}

static void cpu_tensor_from_nchw(tensor *t, const float *host) {
  dnnl_memory_desc_t plain = plain_md(t, FP_F32), stored = activation_md(t);
  if (dnnl_memory_desc_equal(&plain, &stored))
    memcpy(t->data, host, tensor_count(t) * 4);
  else
    reorder(&plain, host, &stored, t->data);
}

/* Staged uploads: the host's floats copied at once into the slot's own buffer. */
static struct {
  stage_state state[BACKEND_STAGES];
  float *data[BACKEND_STAGES];
  size_t capacity[BACKEND_STAGES];
} cpu_stages;

static void cpu_stage_input(int slot, const float *host_nchw, size_t count) {
  backend_stage_begin(cpu_stages.state, slot, count);
  if (cpu_stages.capacity[slot] < count) {
    free(cpu_stages.data[slot]);
    cpu_stages.data[slot] = fp_malloc(count * sizeof(float));
    cpu_stages.capacity[slot] = count;
  }
  memcpy(cpu_stages.data[slot], host_nchw, count * sizeof(float));
}

static void cpu_stage_wait(int slot) {
  FP_CHECK(slot >= 0 && slot < BACKEND_STAGES, "stage_wait: slot %d", slot);
}

static void cpu_tensor_from_staged(tensor *t, int slot) {
  backend_stage_take(cpu_stages.state, slot, t);
  cpu_tensor_from_nchw(t, cpu_stages.data[slot]);
}

static void cpu_tensor_to_nchw(const tensor *t, float *host) {
  dnnl_memory_desc_t plain = plain_md(t, FP_F32), stored = activation_md(t);
  if (dnnl_memory_desc_equal(&plain, &stored))
    memcpy(host, t->data, tensor_count(t) * 4);
  else
    reorder(&stored, t->data, &plain, host);
}

static void cpu_convert(void *dst, fp_dtype dst_type, const void *src, fp_dtype src_type,
                        size_t count) {
  if (dst_type == src_type) {
    cpu_copy(dst, src, dst_type, count);
    return;
  }
  dnnl_dim_t dims[1] = {(dnnl_dim_t)count};
  dnnl_memory_desc_t from = md_by_tag(1, dims, dnnl_type(src_type), dnnl_a);
  dnnl_memory_desc_t to = md_by_tag(1, dims, dnnl_type(dst_type), dnnl_a);
  reorder(&from, src, &to, dst);
}

/* bf16: with AMX, oneDNN 2.6's bf16 convolutions run several times faster than f32 (PyTorch
 * autocast on a Sapphire Rapids: inference 2.4x, shared/notes). With AVX512-BF16 alone they are
 * native (jit_bf16, brgconv) but slower than f32 here: on a 2-core Emerald Rapids without AMX a
 * 64->64 3x3 layer ran at 150 GFLOP/s in bf16 against 245 in f32, and f32 has Winograd on top
 * (results/bench_bf16_r34_288x192.md). Below AVX512-BF16 bf16 is emulated or reference code. */
/* 1 on an AMD CPU (cpuid's vendor string). */
static int cpu_is_amd(void) {
#if defined(__x86_64__) || defined(__i386__)
  unsigned highest, ebx, ecx, edx;
  if (!__get_cpuid(0, &highest, &ebx, &ecx, &edx)) return 0;
  char vendor[13];
  memcpy(vendor, &ebx, 4);
  memcpy(vendor + 4, &edx, 4);
  memcpy(vendor + 8, &ecx, 4);
  vendor[12] = '\0';
  return !strcmp(vendor, "AuthenticAMD");
#else
  return 0;
#endif
}

/* bf16 is what `auto` takes where it was measured faster than f32 (results/README.md): with
 * AMX-BF16, and on AMD's AVX512-BF16 (Zen 4: 1.23x training, 1.42x inference; Zen 5: 1.33x and
 * 1.52x); not on Intel's AVX512-BF16 without AMX (Emerald Rapids: 0.58x and 0.51x). */
static dtype_support cpu_dtype_support(fp_dtype type, char *why, size_t why_size) {
  dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
  switch (type) {
  case FP_F32:
    snprintf(why, why_size, "f32 runs everywhere");
    return DTYPE_FASTER;
  case FP_BF16:
    if (isa >= dnnl_cpu_isa_avx512_core_amx) {
      snprintf(why, why_size, "the CPU has AMX-BF16 (oneDNN ISA avx512_core_amx)");
      return DTYPE_FASTER;
    }
    if (isa >= dnnl_cpu_isa_avx512_core_bf16 && cpu_is_amd()) {
      snprintf(why, why_size,
               "the CPU is an AMD one with AVX512-BF16: oneDNN's bf16 convolutions are faster "
               "than f32 there");
      return DTYPE_FASTER;
    }
    if (isa >= dnnl_cpu_isa_avx512_core_bf16) {
      snprintf(why, why_size,
               "the CPU has AVX512-BF16 but no AMX: oneDNN's bf16 convolutions are native but "
               "slower than f32 on such Intel CPUs");
      return DTYPE_NATIVE;
    }
    snprintf(why, why_size,
             "the CPU has neither AVX512-BF16 nor AMX-BF16, so oneDNN would run bf16 as slow "
             "emulated or reference code");
    return DTYPE_NOT_NATIVE;
  default:
    snprintf(why, why_size, "the CPU backend does not compute in %s", fp_dtype_name(type));
    return DTYPE_NOT_NATIVE;
  }
}

static int cpu_reference_primitive_count(void) {
  return cpu.reference_primitives;
}

/* ------------------------------------------------------------------ table */

const backend *backend_cpu(void) {
  static backend table;
  if (!cpu.engine) {
    DNNL_CHECK(dnnl_engine_create(&cpu.engine, dnnl_cpu, 0));
    DNNL_CHECK(dnnl_stream_create(&cpu.stream, cpu.engine, dnnl_stream_default_flags));
    cpu.channel_block = dnnl_get_effective_cpu_isa() >= dnnl_cpu_isa_avx512_core ? 16 : 8;
    const char *algorithm = getenv("FP_CONV_ALGORITHM");
    FP_CHECK(!algorithm || !strcmp(algorithm, "auto") || !strcmp(algorithm, "direct"),
             "FP_CONV_ALGORITHM must be auto or direct, not '%s'", algorithm);
    cpu.allow_winograd = !algorithm || !strcmp(algorithm, "auto");
    primitive_cache_init(&cpu.cache);
    table = (backend){
        .name = "cpu-onednn",
        .device_memory = 0,
        .dtype_support = cpu_dtype_support,
        .alloc = cpu_alloc,
        .release = cpu_release,
        .fill_zero = cpu_fill_zero,
        .upload = cpu_copy,
        .download = cpu_copy,
        .host_alloc = cpu_host_alloc,
        .host_release = free,
        .download_async = cpu_download_async,
        .download_wait = cpu_download_wait,
        .stage_input = cpu_stage_input,
        .stage_wait = cpu_stage_wait,
        .tensor_from_staged = cpu_tensor_from_staged,
        .copy = cpu_copy,
        .convert = cpu_convert,
        .tensor_bytes = cpu_tensor_bytes,
        .tensor_alloc = cpu_tensor_alloc,
        .tensor_release = cpu_tensor_release,
        .tensor_from_nchw = cpu_tensor_from_nchw,
        .tensor_to_nchw = cpu_tensor_to_nchw,
        .conv2d_forward = cpu_conv2d_forward,
        .conv2d_forward_fused = cpu_conv2d_forward_fused,
        .conv2d_backward_data = cpu_conv2d_backward_data,
        .conv2d_backward_weights = cpu_conv2d_backward_weights,
        .batchnorm_forward_training = cpu_batchnorm_forward_training,
        .batchnorm_forward_inference = cpu_batchnorm_forward_inference,
        .batchnorm_backward = cpu_batchnorm_backward,
        .batchnorm_fold = cpu_batchnorm_fold,
        .batchnorm_update_running = cpu_batchnorm_update_running,
        .batchnorm_sync_moments = cpu_batchnorm_sync_moments,
        .batchnorm_sync_backward_terms = cpu_batchnorm_sync_backward_terms,
        .relu_forward = cpu_relu_forward,
        .relu_backward = cpu_relu_backward,
        .maxpool_forward = cpu_maxpool_forward,
        .maxpool_backward = cpu_maxpool_backward,
        .upsample2x_forward = cpu_upsample2x_forward,
        .upsample2x_backward = cpu_upsample2x_backward,
        .concat_channels = cpu_concat_channels,
        .split_channels = cpu_split_channels,
        .add = cpu_add,
        .global_avgpool_forward = cpu_global_avgpool_forward,
        .global_avgpool_backward = cpu_global_avgpool_backward,
        .inner_product_forward = cpu_inner_product_forward,
        .inner_product_backward = cpu_inner_product_backward,
        .softmax_cross_entropy = cpu_softmax_cross_entropy,
        .argmax_channels = cpu_argmax_channels,
        .class_statistics = cpu_class_statistics,
        .global_maxpool_forward = cpu_global_maxpool_forward,
        .global_maxpool_backward = cpu_global_maxpool_backward,
        .broadcast_plane = cpu_broadcast_plane,
        .sum_plane = cpu_sum_plane,
        .mul = cpu_mul,
        .sigmoid_forward = cpu_sigmoid_forward,
        .sigmoid_backward = cpu_sigmoid_backward,
        .sigmoid_bce = cpu_sigmoid_bce,
        .sigmoid_smooth_l1 = cpu_sigmoid_smooth_l1,
        .gradient_norm = cpu_gradient_norm,
        .adam_update = cpu_adam_update,
        .reference_primitive_count = cpu_reference_primitive_count,
    };
  }
  return &table;
}
