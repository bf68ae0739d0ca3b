/* bfloat16 storage for the CUDA emulator: conversions only (the kernels compute in float). */
#ifndef FP_EMULATED_CUDA_BF16_H
#define FP_EMULATED_CUDA_BF16_H

#include <cstdint>
#include <cstring>

struct __nv_bfloat16 {
  uint16_t bits;
};

inline float __bfloat162float(__nv_bfloat16 h) {
  uint32_t word = (uint32_t)h.bits << 16;
  float f;
  std::memcpy(&f, &word, sizeof f);
  return f;
}

/* round to nearest even; a NaN stays a (quiet) NaN */
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  uint32_t word;
  std::memcpy(&word, &f, sizeof word);
  if ((word & 0x7fffffffu) > 0x7f800000u) return __nv_bfloat16{(uint16_t)((word >> 16) | 0x40u)};
  word += 0x7fffu + ((word >> 16) & 1u);
  return __nv_bfloat16{(uint16_t)(word >> 16)};
}

#endif
