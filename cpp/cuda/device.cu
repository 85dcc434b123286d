// The device and memory calls the bindings need, as error codes (cuda_kernels.h).
#include "common.cuh"

namespace nnfast {
namespace cuda {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear it, so that the next launch reports its own error
    return 0;
  }
  return n;
}

const char* error_string(int code) { return cudaGetErrorString((cudaError_t)code); }

int device_malloc(void** ptr, size_t bytes) {
  *ptr = nullptr;
  return bytes == 0 ? 0 : (int)cudaMalloc(ptr, bytes);
}

int device_free(void* ptr) { return ptr ? (int)cudaFree(ptr) : 0; }

int memcpy_bytes(void* dst, const void* src, size_t bytes, int kind) {
  if (bytes == 0) return 0;
  const cudaMemcpyKind k = kind == 0   ? cudaMemcpyHostToDevice
                           : kind == 1 ? cudaMemcpyDeviceToHost
                                       : cudaMemcpyDeviceToDevice;
  return (int)cudaMemcpy(dst, src, bytes, k);
}

int memset_bytes(void* ptr, int value, size_t bytes) {
  return bytes == 0 ? 0 : (int)cudaMemset(ptr, value, bytes);
}

int synchronize() { return (int)cudaDeviceSynchronize(); }

}  // namespace cuda
}  // namespace nnfast
