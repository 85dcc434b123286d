// The nnfast._cuda extension: the device, the device array type, and the CUDA kernels
// (cpp/cuda/*.cu) as functions on device arrays. The kernel functions are thin: the caller
// (python/nnfast/backend/cuda.py) allocates the outputs and passes the sizes; the bindings check
// dtypes and that every array is large enough, launch, and raise RuntimeError on a CUDA error.
#include <pybind11/pybind11.h>

#include "bindings.h"
#include "cuda_kernels.h"

namespace py = pybind11;
using namespace nnfast::cuda;

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "nnfast's CUDA kernels on device arrays (float32 data, int64 labels)";
  m.def("device_count", &device_count,
        "Number of CUDA devices; 0 when there is none or no driver (cudaGetDeviceCount fails).");
  m.def("synchronize", [] {
    refuse_while_capturing("synchronize");
    check_cuda(synchronize(), "synchronize");
  },
        "Wait for the kernels launched so far (cudaStreamSynchronize of nnfast's stream).");
  m.def("empty_cache", &empty_cache, "Free the device memory the allocator keeps for reuse.");
  m.def("cached_bytes", &cached_bytes, "Bytes of device memory the allocator keeps for reuse.");
  bind_array(m);
  bind_interchange(m);
  bind_dense(m);
  bind_elementwise(m);
  bind_graph(m);
  bind_images(m);
  bind_norm(m);
  bind_optim(m);
}
