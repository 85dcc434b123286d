// The device and memory calls the bindings need, as error codes (cuda_kernels.h). A call that
// fails clears the runtime's last error, which it has reported itself, so that the next launcher
// reports only its own (the cache retries a failed cudaMalloc after freeing its blocks).
#include "common.cuh"

namespace nnfast {
namespace cuda {

// The code of a runtime call, its error cleared from the last-error state.
static int reported(cudaError_t e) {
  if (e != cudaSuccess) cudaGetLastError();
  return (int)e;
}

int device_count() {
  int n = 0;
  return reported(cudaGetDeviceCount(&n)) == 0 ? n : 0;
}

const char* error_string(int code) { return cudaGetErrorString((cudaError_t)code); }

int device_malloc(void** ptr, size_t bytes) {
  *ptr = nullptr;
  return bytes == 0 ? 0 : reported(cudaMalloc(ptr, bytes));
}

int device_free(void* ptr) { return ptr ? reported(cudaFree(ptr)) : 0; }

int memcpy_bytes(void* dst, const void* src, size_t bytes, int kind) {
  if (bytes == 0) return 0;
  const cudaMemcpyKind k = kind == 0   ? cudaMemcpyHostToDevice
                           : kind == 1 ? cudaMemcpyDeviceToHost
                                       : cudaMemcpyDeviceToDevice;
  return reported(cudaMemcpy(dst, src, bytes, k));
}

int memset_bytes(void* ptr, int value, size_t bytes) {
  return bytes == 0 ? 0 : reported(cudaMemset(ptr, value, bytes));
}

int synchronize() { return reported(cudaDeviceSynchronize()); }

int current_device(int* device) { return reported(cudaGetDevice(device)); }

int pointer_device(const void* ptr, int* device) {
  cudaPointerAttributes attributes{};
  const int code = reported(cudaPointerGetAttributes(&attributes, ptr));
  *device = code == 0 ? attributes.device : 0;
  return code;
}

}  // namespace cuda
}  // namespace nnfast
