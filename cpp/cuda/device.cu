// The device, stream, memory and graph calls the bindings need, as error codes (cuda_kernels.h). A call that
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

cudaStream_t stream() {
  static cudaStream_t s = [] {
    cudaStream_t created = nullptr;
    reported(cudaStreamCreateWithFlags(&created, cudaStreamNonBlocking));
    return created;   // null (the legacy stream) only where no device could make one
  }();
  return s;
}

int memcpy_bytes(void* dst, const void* src, size_t bytes, int kind) {
  if (bytes == 0) return 0;
  const cudaMemcpyKind k = kind == 0   ? cudaMemcpyHostToDevice
                           : kind == 1 ? cudaMemcpyDeviceToHost
                                       : cudaMemcpyDeviceToDevice;
  const int code = reported(cudaMemcpyAsync(dst, src, bytes, k, stream()));
  return code != 0 || kind != 1 ? code : synchronize();
}

int memset_bytes(void* ptr, int value, size_t bytes) {
  return bytes == 0 ? 0 : reported(cudaMemsetAsync(ptr, value, bytes, stream()));
}

int synchronize() { return reported(cudaStreamSynchronize(stream())); }

int stream_synchronize(int64_t handle) {
  const cudaStream_t s = handle == 1   ? cudaStreamLegacy
                         : handle == 2 ? cudaStreamPerThread
                                       : reinterpret_cast<cudaStream_t>(handle);
  return reported(cudaStreamSynchronize(s));
}

int64_t stream_handle() { return reinterpret_cast<int64_t>(stream()); }

// ------------------------------------------------------------------------------------- graphs
int graph_capture_begin() {
  return reported(cudaStreamBeginCapture(stream(), cudaStreamCaptureModeRelaxed));
}

int graph_capture_end(void** exec) {
  *exec = nullptr;
  cudaGraph_t graph = nullptr;
  int code = reported(cudaStreamEndCapture(stream(), &graph));
  if (code == 0) {
    cudaGraphExec_t e = nullptr;
    code = reported(cudaGraphInstantiate(&e, graph, 0));
    *exec = code == 0 ? e : nullptr;
  }
  if (graph) cudaGraphDestroy(graph);   // the executable graph keeps what it needs
  return code;
}

int graph_launch(void* exec) {
  return reported(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec), stream()));
}

int graph_destroy(void* exec) {
  const int code = synchronize();   // a replay may still be running
  if (exec) reported(cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec)));
  return code;
}

int current_device(int* device) { return reported(cudaGetDevice(device)); }

int pointer_device(const void* ptr, int* device) {
  cudaPointerAttributes attributes{};
  const int code = reported(cudaPointerGetAttributes(&attributes, ptr));
  *device = code == 0 ? attributes.device : 0;
  return code;
}

}  // namespace cuda
}  // namespace nnfast
