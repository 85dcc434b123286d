// Bindings of batch normalisation (norm.cu): x (N, C, S) given by its sizes, every array checked
// to hold what the kernels read or write; optional ones None.
#include "bindings.h"
#include "cuda_kernels.h"

namespace nnfast {
namespace cuda {
namespace {

using A = DeviceArray*;

// data of an optional per-channel (C) array
float* channel_array(A a, int C, const char* fn, const char* name) {
  need(a, (size_t)C, fn, name);
  return f32_or_null(a, fn, name);
}

}  // namespace

void bind_norm(py::module_& m) {
  m.def("batchnorm_forward", [](A y, A mean, A invstd, A x, A gamma, A beta, A running_mean,
                                A running_var, int C, size_t N, size_t S, bool training,
                                float momentum, float eps) {
    const char* fn = "batchnorm_forward";
    const size_t n = N * (size_t)C * S;
    need(x, n, fn, "x");
    need(y, n, fn, "y");
    // the CPU binding's rules (cpp/bindings/norm.cpp)
    if (!mean || !invstd) throw py::value_error("batchnorm_forward: mean and invstd are required");
    if (!running_mean != !running_var)
      throw py::value_error("batchnorm_forward: running_mean and running_var go together");
    if (!training && !running_mean)
      throw py::value_error("batchnorm_forward: running_mean and running_var are required when "
                            "not training");
    if (training && N * S < 2)
      throw py::value_error("batchnorm_forward: training needs more than 1 value per channel");
    check_cuda(batchnorm_forward(f32(y, fn, "y"), channel_array(mean, C, fn, "mean"),
                                 channel_array(invstd, C, fn, "invstd"), f32(x, fn, "x"),
                                 channel_array(gamma, C, fn, "gamma"),
                                 channel_array(beta, C, fn, "beta"),
                                 channel_array(running_mean, C, fn, "running_mean"),
                                 channel_array(running_var, C, fn, "running_var"), C, N, S,
                                 training, momentum, eps), fn);
  }, py::arg("y"), py::arg("mean"), py::arg("invstd"), py::arg("x"), py::arg("gamma").none(true),
     py::arg("beta").none(true), py::arg("running_mean").none(true),
     py::arg("running_var").none(true), py::arg("C"), py::arg("N"), py::arg("S"),
     py::arg("training"), py::arg("momentum"), py::arg("eps"));
  m.def("batchnorm_backward", [](A dx, A dgamma, A dbeta, A dy, A x, A gamma, A mean, A invstd,
                                 int C, size_t N, size_t S, bool training, bool accumulate) {
    const char* fn = "batchnorm_backward";
    const size_t n = N * (size_t)C * S;
    need(x, n, fn, "x");
    need(dy, n, fn, "dy");
    need(dx, n, fn, "dx");
    if (!mean || !invstd || (!dgamma != !dbeta))
      throw py::value_error("batchnorm_backward: needs mean and invstd, and dgamma with dbeta");
    check_cuda(batchnorm_backward(f32_or_null(dx, fn, "dx"),
                                  channel_array(dgamma, C, fn, "dgamma"),
                                  channel_array(dbeta, C, fn, "dbeta"), f32(dy, fn, "dy"),
                                  f32(x, fn, "x"), channel_array(gamma, C, fn, "gamma"),
                                  channel_array(mean, C, fn, "mean"),
                                  channel_array(invstd, C, fn, "invstd"), C, N, S, training,
                                  accumulate), fn);
  }, py::arg("dx").none(true), py::arg("dgamma").none(true), py::arg("dbeta").none(true),
     py::arg("dy"), py::arg("x"), py::arg("gamma").none(true), py::arg("mean"), py::arg("invstd"),
     py::arg("C"), py::arg("N"), py::arg("S"), py::arg("training"), py::arg("accumulate"));
}

}  // namespace cuda
}  // namespace nnfast
