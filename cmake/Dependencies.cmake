# Every dependency comes from Debian packages (see cmake/debian-packages.txt);
# the CUDA toolkit with cuDNN, cuBLAS and NCCL is optional under /usr/local/cuda.
# FP_GPU_CHECK_BUILD (tests/gpu/run.sh) needs only the CUDA toolkit and OpenMP.
if(NOT FP_GPU_CHECK_BUILD)
  find_package(PkgConfig REQUIRED)
  # Debian's serial HDF5: libmatio links it, and one process must hold one HDF5 library (with
  # hdf5-openmpi too, ingest loaded both). Every rank writes files of its own: nothing here
  # needs parallel HDF5.
  pkg_check_modules(HDF5_SERIAL REQUIRED IMPORTED_TARGET hdf5-serial)
  pkg_check_modules(ZSTD REQUIRED IMPORTED_TARGET libzstd)
  pkg_check_modules(MATIO REQUIRED IMPORTED_TARGET matio)
  pkg_check_modules(ZLIB REQUIRED IMPORTED_TARGET zlib)
  pkg_check_modules(JPEG REQUIRED IMPORTED_TARGET libjpeg)
  pkg_check_modules(PNG REQUIRED IMPORTED_TARGET libpng)
  find_package(MPI REQUIRED COMPONENTS C)
  find_package(dnnl REQUIRED)
endif()
find_package(OpenMP REQUIRED COMPONENTS C)
find_package(Threads REQUIRED)

set(FP_CUDA_ROOT "/usr/local/cuda" CACHE PATH "CUDA toolkit root (cuDNN, cuBLAS, NCCL looked for here)")
# A build directory configured again with another FP_CUDA_ROOT searches it afresh: what was
# found under the previous root is forgotten (a path given with -D elsewhere is kept).
if(FP_CUDA_ROOT_SEARCHED AND NOT "${FP_CUDA_ROOT}" STREQUAL "${FP_CUDA_ROOT_SEARCHED}")
  foreach(found FP_CUDNN_INCLUDE FP_NCCL_INCLUDE FP_CUDART_INCLUDE FP_CUBLAS_INCLUDE FP_CUDART_LIB
          FP_CUDNN_LIB FP_CUBLAS_LIB FP_NCCL_LIB FP_NVCC)
    string(FIND "${${found}}" "${FP_CUDA_ROOT_SEARCHED}/" at)
    if(at EQUAL 0)
      unset(${found} CACHE)
    endif()
  endforeach()
endif()
set(FP_CUDA_ROOT_SEARCHED "${FP_CUDA_ROOT}" CACHE INTERNAL "FP_CUDA_ROOT the cached paths are from")
find_path(FP_CUDNN_INCLUDE cudnn.h HINTS ${FP_CUDA_ROOT}/include NO_DEFAULT_PATH)
find_path(FP_NCCL_INCLUDE nccl.h HINTS ${FP_CUDA_ROOT}/include NO_DEFAULT_PATH)
find_path(FP_CUDART_INCLUDE cuda_runtime_api.h HINTS ${FP_CUDA_ROOT}/include NO_DEFAULT_PATH)
find_path(FP_CUBLAS_INCLUDE cublas_v2.h HINTS ${FP_CUDA_ROOT}/include NO_DEFAULT_PATH)
find_library(FP_CUDART_LIB cudart HINTS ${FP_CUDA_ROOT}/lib64 NO_DEFAULT_PATH)
find_library(FP_CUDNN_LIB cudnn HINTS ${FP_CUDA_ROOT}/lib64 NO_DEFAULT_PATH)
find_library(FP_CUBLAS_LIB cublas HINTS ${FP_CUDA_ROOT}/lib64 NO_DEFAULT_PATH)
find_library(FP_NCCL_LIB nccl HINTS ${FP_CUDA_ROOT}/lib64 NO_DEFAULT_PATH)
find_program(FP_NVCC nvcc HINTS ${FP_CUDA_ROOT}/bin NO_DEFAULT_PATH)
# FP_CUDA_EMULATOR: the CUDA backend built against tests/cuda_emulator instead of a toolkit, its
# kernels and libraries run on the host, NCCL over MPI (tests/cuda_emulator/README.md).
option(FP_CUDA_EMULATOR "Build the CUDA backend on the host emulator (a test build)" OFF)
set(FP_HAVE_NCCL OFF)
if(FP_CUDA_EMULATOR AND FP_SANITIZE)
  message(FATAL_ERROR "FP_CUDA_EMULATOR with FP_SANITIZE: the emulator's fibers switch stacks "
    "without telling AddressSanitizer")
elseif(FP_CUDA_EMULATOR)
  set(FP_HAVE_CUDA ON)
  set(FP_HAVE_NCCL ON)
  message(STATUS "CUDA backend on the host emulator (tests/cuda_emulator), NCCL over MPI")
  add_subdirectory(${CMAKE_SOURCE_DIR}/tests/cuda_emulator ${CMAKE_BINARY_DIR}/cuda_emulator)
  foreach(library cudart cudnn cublas nccl)
    add_library(fp_cuda::${library} ALIAS fp_cuda_emulator)
  endforeach()
elseif(FP_CUDART_INCLUDE AND FP_CUDNN_INCLUDE AND FP_NCCL_INCLUDE AND FP_CUBLAS_INCLUDE AND FP_CUDART_LIB
   AND FP_CUDNN_LIB AND FP_CUBLAS_LIB AND FP_NCCL_LIB AND FP_NVCC)
  set(FP_HAVE_CUDA ON)
  set(FP_HAVE_NCCL ON)
  message(STATUS "CUDA toolkit with cuDNN, cuBLAS and NCCL found under ${FP_CUDA_ROOT}")
  # Imported targets carry their include directories as system headers (so -Werror does not
  # see the headers' own warnings) and the libraries' full paths.
  add_library(fp_cuda::cudart SHARED IMPORTED)
  set_target_properties(fp_cuda::cudart PROPERTIES
    IMPORTED_LOCATION ${FP_CUDART_LIB} INTERFACE_INCLUDE_DIRECTORIES ${FP_CUDART_INCLUDE})
  add_library(fp_cuda::nccl SHARED IMPORTED)
  set_target_properties(fp_cuda::nccl PROPERTIES
    IMPORTED_LOCATION ${FP_NCCL_LIB} INTERFACE_INCLUDE_DIRECTORIES ${FP_NCCL_INCLUDE}
    INTERFACE_LINK_LIBRARIES fp_cuda::cudart)
  add_library(fp_cuda::cudnn SHARED IMPORTED)
  set_target_properties(fp_cuda::cudnn PROPERTIES
    IMPORTED_LOCATION ${FP_CUDNN_LIB} INTERFACE_INCLUDE_DIRECTORIES ${FP_CUDNN_INCLUDE}
    INTERFACE_LINK_LIBRARIES fp_cuda::cudart)
  add_library(fp_cuda::cublas SHARED IMPORTED)
  set_target_properties(fp_cuda::cublas PROPERTIES
    IMPORTED_LOCATION ${FP_CUBLAS_LIB} INTERFACE_INCLUDE_DIRECTORIES ${FP_CUBLAS_INCLUDE}
    INTERFACE_LINK_LIBRARIES fp_cuda::cudart)
  # Our kernels (src/backend/*.cu): sm_80 (A100) and sm_90 (H100/H200) unless told otherwise.
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 80 90)
  endif()
  set(CMAKE_CUDA_COMPILER ${FP_NVCC})
  enable_language(CUDA)
else()
  set(FP_HAVE_CUDA OFF)
  message(STATUS "CUDA toolkit, cuDNN, cuBLAS or NCCL not found under ${FP_CUDA_ROOT}: CPU build only")
  if(FP_GPU_CHECK_BUILD)
    message(FATAL_ERROR "FP_GPU_CHECK_BUILD needs the CUDA toolkit with cuDNN, cuBLAS and NCCL "
      "(FP_CUDA_ROOT=${FP_CUDA_ROOT}; tests/gpu/run.sh shows how to point at them)")
  endif()
endif()
