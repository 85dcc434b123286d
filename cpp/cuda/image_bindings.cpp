// Bindings of the image families: pooling (pool.cu), convolution and the fused
// Conv2d -> ReLU -> MaxPool2d (conv.cu). Geometry comes as
// a tuple of ints in the order of the CPU's shape structs: pool (N, C, H, W, KH, KW, SH, SW, PH,
// PW), conv (N, C, H, W, OC, KH, KW, SH, SW, PH, PW).
#include <pybind11/stl.h>

#include <array>

#include "bindings.h"
#include "cuda_kernels.h"

namespace nnfast {
namespace cuda {
namespace {

Pool2dShape pool_shape(const std::array<int, 10>& g, const char* fn) {
  const Pool2dShape s{g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9]};
  const bool ok = s.N >= 0 && s.C >= 0 && s.KH > 0 && s.KW > 0 && s.SH > 0 && s.SW > 0 &&
                  s.PH >= 0 && s.PW >= 0 && 2 * s.PH <= s.KH && 2 * s.PW <= s.KW &&
                  s.H + 2 * s.PH >= s.KH && s.W + 2 * s.PW >= s.KW;
  if (!ok) throw py::value_error(std::string(fn) + ": bad pooling geometry");
  return s;
}

Conv2dShape conv_shape(const std::array<int, 11>& g, const char* fn) {
  const Conv2dShape s{g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10]};
  const bool ok = s.N >= 0 && s.C > 0 && s.OC > 0 && s.KH > 0 && s.KW > 0 && s.SH > 0 &&
                  s.SW > 0 && s.PH >= 0 && s.PW >= 0 && s.H + 2 * s.PH >= s.KH &&
                  s.W + 2 * s.PW >= s.KW;
  if (!ok) throw py::value_error(std::string(fn) + ": bad convolution geometry");
  return s;
}

size_t pool_out(const Pool2dShape& s) { return (size_t)s.N * s.C * s.OH() * s.OW(); }
size_t pool_in(const Pool2dShape& s) { return (size_t)s.N * s.C * s.H * s.W; }

void bind_pooling(py::module_& m) {
  using A = DeviceArray*;
  m.def("maxpool2d_forward", [](A y, A argmax, A x, const std::array<int, 10>& g) {
    const char* fn = "maxpool2d_forward";
    const Pool2dShape s = pool_shape(g, fn);
    need(x, pool_in(s), fn, "x");
    need(y, pool_out(s), fn, "y");
    need(argmax, pool_out(s), fn, "argmax");
    check_cuda(cuda::maxpool2d_forward(f32(y, fn, "y"), data_of<int32_t>(argmax, DType::int32, fn,
                                 "argmax"), f32(x, fn, "x"), s), fn);
  }, py::arg("y"), py::arg("argmax"), py::arg("x"), py::arg("geometry"));
  m.def("maxpool2d_backward", [](A dx, A dy, A argmax, const std::array<int, 10>& g) {
    const char* fn = "maxpool2d_backward";
    const Pool2dShape s = pool_shape(g, fn);
    need(dx, pool_in(s), fn, "dx");
    need(dy, pool_out(s), fn, "dy");
    need(argmax, pool_out(s), fn, "argmax");
    check_cuda(cuda::maxpool2d_backward(f32(dx, fn, "dx"), f32(dy, fn, "dy"),
                                  data_of<int32_t>(argmax, DType::int32, fn, "argmax"), s), fn);
  }, py::arg("dx"), py::arg("dy"), py::arg("argmax"), py::arg("geometry"));
  m.def("avgpool2d_forward", [](A y, A x, const std::array<int, 10>& g) {
    const char* fn = "avgpool2d_forward";
    const Pool2dShape s = pool_shape(g, fn);
    need(x, pool_in(s), fn, "x");
    need(y, pool_out(s), fn, "y");
    check_cuda(cuda::avgpool2d_forward(f32(y, fn, "y"), f32(x, fn, "x"), s), fn);
  }, py::arg("y"), py::arg("x"), py::arg("geometry"));
  m.def("avgpool2d_backward", [](A dx, A dy, const std::array<int, 10>& g) {
    const char* fn = "avgpool2d_backward";
    const Pool2dShape s = pool_shape(g, fn);
    need(dx, pool_in(s), fn, "dx");
    need(dy, pool_out(s), fn, "dy");
    check_cuda(cuda::avgpool2d_backward(f32(dx, fn, "dx"), f32(dy, fn, "dy"), s), fn);
  }, py::arg("dx"), py::arg("dy"), py::arg("geometry"));
}

// Checks the arrays of a convolution against its geometry (any may be null).
void check_conv(const Conv2dShape& s, DeviceArray* x, DeviceArray* w, DeviceArray* b,
                DeviceArray* y, const char* fn, const char* yname) {
  need(x, (size_t)s.N * s.C * s.H * s.W, fn, "x");
  need(w, (size_t)s.OC * s.C * s.KH * s.KW, fn, "w");
  need(b, (size_t)s.OC, fn, "b");
  need(y, (size_t)s.N * s.OC * s.OH() * s.OW(), fn, yname);
}

void bind_conv(py::module_& m) {
  using A = DeviceArray*;
  m.def("conv2d_forward", [](A y, A x, A w, A b, const std::array<int, 11>& g) {
    const char* fn = "conv2d_forward";
    const Conv2dShape s = conv_shape(g, fn);
    check_conv(s, x, w, b, y, fn, "y");
    auto work = device_empty({(int64_t)cuda::conv2d_workspace_size(s)}, DType::float32);
    check_cuda(cuda::conv2d_forward(f32(y, fn, "y"), f32(x, fn, "x"), f32(w, fn, "w"),
                              f32_or_null(b, fn, "b"), s, f32(work.get(), fn, "workspace")), fn);
  }, py::arg("y"), py::arg("x"), py::arg("w"), py::arg("b").none(true), py::arg("geometry"));
  m.def("conv2d_backward", [](A dx, A dw, A db, A dy, A x, A w, const std::array<int, 11>& g,
                              bool accumulate) {
    const char* fn = "conv2d_backward";
    const Conv2dShape s = conv_shape(g, fn);
    check_conv(s, x, w, db, dy, fn, "dy");
    check_conv(s, dx, dw, nullptr, nullptr, fn, "dy");
    auto work = device_empty({(int64_t)cuda::conv2d_workspace_size(s)}, DType::float32);
    check_cuda(cuda::conv2d_backward(f32_or_null(dx, fn, "dx"), f32_or_null(dw, fn, "dw"),
                               f32_or_null(db, fn, "db"), f32(dy, fn, "dy"), f32(x, fn, "x"),
                               f32(w, fn, "w"), s, f32(work.get(), fn, "workspace"), accumulate),
               fn);
  }, py::arg("dx").none(true), py::arg("dw").none(true), py::arg("db").none(true), py::arg("dy"),
     py::arg("x"), py::arg("w"), py::arg("geometry"), py::arg("accumulate"));
}

// The pooling geometry of a fused step must read the convolution's output.
void check_fused(const Conv2dShape& s, const Pool2dShape& p, const char* fn) {
  if (p.N != s.N || p.C != s.OC || p.H != s.OH() || p.W != s.OW())
    throw py::value_error(std::string(fn) + ": the pooling geometry does not match the "
                          "convolution's output");
}

void bind_fused(py::module_& m) {
  using A = DeviceArray*;
  m.def("conv2d_relu_maxpool_forward", [](A y, A argmax, A x, A w, A b,
                                          const std::array<int, 11>& cg,
                                          const std::array<int, 10>& pg) {
    const char* fn = "conv2d_relu_maxpool_forward";
    const Conv2dShape s = conv_shape(cg, fn);
    const Pool2dShape p = pool_shape(pg, fn);
    check_fused(s, p, fn);
    check_conv(s, x, w, b, nullptr, fn, "y");
    need(y, pool_out(p), fn, "y");
    need(argmax, pool_out(p), fn, "argmax");
    auto work = device_empty({(int64_t)conv2d_relu_maxpool_workspace_size(s)}, DType::float32);
    check_cuda(conv2d_relu_maxpool_forward(
        f32(y, fn, "y"), data_of<int32_t>(argmax, DType::int32, fn, "argmax"), f32(x, fn, "x"),
        f32(w, fn, "w"), f32_or_null(b, fn, "b"), s, p, f32(work.get(), fn, "workspace")), fn);
  }, py::arg("y"), py::arg("argmax"), py::arg("x"), py::arg("w"), py::arg("b").none(true),
     py::arg("conv_geometry"), py::arg("pool_geometry"));
  m.def("conv2d_relu_maxpool_backward", [](A dx, A dw, A db, A g, A y, A argmax, A x, A w,
                                           const std::array<int, 11>& cg,
                                           const std::array<int, 10>& pg, bool accumulate) {
    const char* fn = "conv2d_relu_maxpool_backward";
    const Conv2dShape s = conv_shape(cg, fn);
    const Pool2dShape p = pool_shape(pg, fn);
    check_fused(s, p, fn);
    check_conv(s, x, w, db, nullptr, fn, "g");
    check_conv(s, dx, dw, nullptr, nullptr, fn, "g");
    for (auto [a, name] : {std::pair{g, "g"}, {y, "y"}}) need(a, pool_out(p), fn, name);
    need(argmax, pool_out(p), fn, "argmax");
    auto work = device_empty({(int64_t)conv2d_relu_maxpool_workspace_size(s)}, DType::float32);
    check_cuda(conv2d_relu_maxpool_backward(
        f32_or_null(dx, fn, "dx"), f32_or_null(dw, fn, "dw"), f32_or_null(db, fn, "db"),
        f32(g, fn, "g"), f32(y, fn, "y"), data_of<int32_t>(argmax, DType::int32, fn, "argmax"),
        f32(x, fn, "x"), f32(w, fn, "w"), s, p, f32(work.get(), fn, "workspace"), accumulate),
        fn);
  }, py::arg("dx").none(true), py::arg("dw").none(true), py::arg("db").none(true), py::arg("g"),
     py::arg("y"), py::arg("argmax"), py::arg("x"), py::arg("w"), py::arg("conv_geometry"),
     py::arg("pool_geometry"), py::arg("accumulate"));
}

}  // namespace

void bind_images(py::module_& m) {
  bind_pooling(m);
  bind_conv(m);
  bind_fused(m);
}

}  // namespace cuda
}  // namespace nnfast
