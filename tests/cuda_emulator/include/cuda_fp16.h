/* IEEE half storage for the CUDA emulator: conversions only, through the compiler's _Float16
 * (GCC 12 on x86-64), which rounds to nearest even like __float2half_rn. */
#ifndef FP_EMULATED_CUDA_FP16_H
#define FP_EMULATED_CUDA_FP16_H

#include <cstring>

struct __half {
  _Float16 value;
};

inline float __half2float(__half h) {
  return (float)h.value;
}

inline __half __float2half_rn(float f) {
  return __half{(_Float16)f};
}

#endif
