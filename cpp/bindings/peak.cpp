// Bindings of the FMA peak loop (nnfast/peak.h), for benchmarks/peak.py.
#include "checks.h"
#include "register.h"

namespace nnfast_bindings {
using namespace nnfast;

namespace {

py::tuple py_fma_peak(int64_t iterations) {
  if (iterations < 1 || iterations > (int64_t(1) << 30))
    value_error("fma_peak", "iterations must be in [1, 2^30], got " + std::to_string(iterations));
  double flops = 0.0;
  float sum;
  {
    py::gil_scoped_release release;
    sum = kernels().fma_peak(iterations, &flops);
  }
  return py::make_tuple(flops, sum);
}

}  // namespace

void register_peak(py::module_& m) {
  m.def("fma_peak", &py_fma_peak, py::arg("iterations"),
        "(flops, checksum): `iterations` rounds of independent FMA chains on every kernel "
        "thread; time it to get the FP32 FMA peak of the kernels' copy.");
  m.def("fma_peak_chains", [] { return kernels().fma_peak_chains(); },
        "The independent FMA chains per thread in fma_peak.");
}

}  // namespace nnfast_bindings
