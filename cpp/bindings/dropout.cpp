// Bindings of dropout (nnfast/dropout.h).
#include "checks.h"
#include "register.h"

namespace nnfast_bindings {
using namespace nnfast;

namespace {

// The drop probability p, checked to lie in [0, 1).
float dropout_p(float p, const char* fn) {
  if (!(p >= 0.0f && p < 1.0f)) value_error(fn, "p must be in [0, 1), got " + std::to_string(p));
  return p;
}
py::tuple py_dropout_forward(py::object x_, float p, uint64_t seed) {
  const char* fn = "dropout_forward";
  py::array x = f32(x_, fn, "x");
  dropout_p(p, fn);
  FloatArray y = new_array<float>(shape_of(x));
  py::array_t<uint8_t> mask = new_array<uint8_t>(shape_of(x));
  {
    py::gil_scoped_release release;
    kernels().dropout_forward(y.mutable_data(), mask.mutable_data(), fptr(x), (size_t)x.size(), p, seed);
  }
  return py::make_tuple(y, mask);
}
FloatArray py_dropout_backward(py::object dy_, py::object mask_, float p) {
  const char* fn = "dropout_backward";
  py::array dy = f32(dy_, fn, "dy");
  py::array mask = checked(mask_, fn, "mask", py::dtype::of<uint8_t>(), "uint8");
  check_shape(mask, shape_of(dy), fn, "mask");
  dropout_p(p, fn);
  FloatArray dx = new_array<float>(shape_of(dy));
  py::gil_scoped_release release;
  kernels().dropout_backward(dx.mutable_data(), fptr(dy), (const uint8_t*)mask.data(), (size_t)dy.size(), p);
  return dx;
}

}  // namespace

void register_dropout(py::module_& m) {
  using py::arg;
  m.def("dropout_forward", &py_dropout_forward, arg("x"), arg("p"), arg("seed"),
        "(y, mask uint8): inverted dropout, mask a pure function of (seed, flat index).");
  m.def("dropout_backward", &py_dropout_backward, arg("dy"), arg("mask"), arg("p"));
}

}  // namespace nnfast_bindings
