// Bindings of CUDA graphs (device.cu's graph_* calls, device_array.cpp's pools): capture_begin /
// capture_end / capture_abort / is_capturing, and the Graph that capture_end returns, whose
// replay() launches what was captured on nnfast's stream. The graph owns the pool its arrays came
// from; destroying it waits for its last replay, then gives the pool to the cache.
#include <pybind11/pybind11.h>

#include <memory>
#include <stdexcept>

#include "bindings.h"
#include "cuda_kernels.h"

namespace nnfast {
namespace cuda {
namespace {

struct Graph {
  void* exec = nullptr;
  std::shared_ptr<Pool> pool;

  Graph(void* e, std::shared_ptr<Pool> p) : exec(e), pool(std::move(p)) {}
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  ~Graph() {
    graph_destroy(exec);
    release_pool(pool);
  }
  void replay() const { check_cuda(graph_launch(exec), "Graph.replay"); }
};

void capture_begin() {
  if (capturing()) throw std::runtime_error("capture_begin: a capture is open already");
  begin_capture_pool();   // first: blocks freed from now on may be read by the graph
  const int code = graph_capture_begin();
  if (code != 0) release_pool(end_capture_pool());
  check_cuda(code, "capture_begin");
}

std::unique_ptr<Graph> capture_end() {
  if (!capturing()) throw std::runtime_error("capture_end: no capture is open");
  void* exec = nullptr;
  const int code = graph_capture_end(&exec);
  std::shared_ptr<Pool> pool = end_capture_pool();
  if (code != 0) {
    synchronize();   // the memory of a failed capture may still be in use by earlier work
    release_pool(pool);
    check_cuda(code, "capture_end");
  }
  return std::make_unique<Graph>(exec, std::move(pool));
}

void capture_abort() {
  if (!capturing()) return;
  void* exec = nullptr;
  graph_capture_end(&exec);   // whatever was captured is dropped
  std::shared_ptr<Pool> pool = end_capture_pool();
  graph_destroy(exec);
  release_pool(pool);
}

}  // namespace

void bind_graph(py::module_& m) {
  py::class_<Graph>(m, "Graph", "An instantiated CUDA graph of nnfast's stream.")
      .def("replay", &Graph::replay,
           "Launch the captured work again on nnfast's stream (asynchronously).");
  m.def("capture_begin", &capture_begin,
        "Start capturing nnfast's stream into a CUDA graph: launches are recorded, not run, and "
        "allocations come from the graph's own pool (RuntimeError when a capture is open).");
  m.def("capture_end", &capture_end,
        "Stop capturing and instantiate the graph (RuntimeError when CUDA refuses it).");
  m.def("capture_abort", &capture_abort, "Drop the capture that is open, if one is.");
  m.def("is_capturing", &capturing, "Whether a capture is open.");
}

}  // namespace cuda
}  // namespace nnfast
