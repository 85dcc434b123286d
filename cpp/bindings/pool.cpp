// Bindings of max and average pooling (nnfast/pool.h).
#include "checks.h"
#include "register.h"

namespace nnfast_bindings {
using namespace nnfast;

namespace {

// The input_shape argument of the backward passes, as a Shape (pool_shape checks its rank).
Shape shape_arg(py::object obj, const char* fn) {
  try {
    return obj.cast<Shape>();
  } catch (const py::cast_error&) {
    throw py::type_error(std::string(fn) + ": input_shape must be a tuple of 4 ints");
  }
}

py::tuple py_maxpool2d_forward(py::object x_, py::object kernel, py::object stride,
                               py::object padding) {
  const char* fn = "maxpool2d_forward";
  py::array x = f32(x_, fn, "x");
  Pool2dShape s = pool_shape(shape_of(x), kernel, stride, padding, fn);
  FloatArray y = new_array<float>({s.N, s.C, s.OH(), s.OW()});
  py::array_t<int32_t> argmax = new_array<int32_t>({s.N, s.C, s.OH(), s.OW()});
  {
    py::gil_scoped_release release;
    kernels().maxpool2d_forward(y.mutable_data(), argmax.mutable_data(), fptr(x), s);
  }
  return py::make_tuple(y, argmax);
}

FloatArray py_maxpool2d_backward(py::object dy_, py::object argmax_, py::object input_shape,
                                 py::object kernel, py::object stride, py::object padding) {
  const char* fn = "maxpool2d_backward";
  py::array dy = f32(dy_, fn, "dy");
  py::array am = checked(argmax_, fn, "argmax", py::dtype::of<int32_t>(), "int32");
  Pool2dShape s = pool_shape(shape_arg(input_shape, fn), kernel, stride, padding, fn);
  const Shape out{s.N, s.C, s.OH(), s.OW()};
  check_shape(dy, out, fn, "dy");
  check_shape(am, out, fn, "argmax");
  const int32_t* a = checked_argmax(am, s, fn);
  FloatArray dx = new_array<float>({s.N, s.C, s.H, s.W});
  py::gil_scoped_release release;
  kernels().maxpool2d_backward(dx.mutable_data(), fptr(dy), a, s);
  return dx;
}

FloatArray py_avgpool2d_forward(py::object x_, py::object kernel, py::object stride,
                                py::object padding) {
  const char* fn = "avgpool2d_forward";
  py::array x = f32(x_, fn, "x");
  Pool2dShape s = pool_shape(shape_of(x), kernel, stride, padding, fn);
  FloatArray y = new_array<float>({s.N, s.C, s.OH(), s.OW()});
  py::gil_scoped_release release;
  kernels().avgpool2d_forward(y.mutable_data(), fptr(x), s);
  return y;
}

FloatArray py_avgpool2d_backward(py::object dy_, py::object input_shape, py::object kernel,
                                 py::object stride, py::object padding) {
  const char* fn = "avgpool2d_backward";
  py::array dy = f32(dy_, fn, "dy");
  Pool2dShape s = pool_shape(shape_arg(input_shape, fn), kernel, stride, padding, fn);
  check_shape(dy, {s.N, s.C, s.OH(), s.OW()}, fn, "dy");
  FloatArray dx = new_array<float>({s.N, s.C, s.H, s.W});
  py::gil_scoped_release release;
  kernels().avgpool2d_backward(dx.mutable_data(), fptr(dy), s);
  return dx;
}

}  // namespace

void register_pool(py::module_& m) {
  using py::arg;
  m.def("maxpool2d_forward", &py_maxpool2d_forward, arg("x"), arg("kernel_size"),
        arg("stride") = py::none(), arg("padding") = 0, "(y, argmax int32).");
  m.def("maxpool2d_backward", &py_maxpool2d_backward, arg("dy"), arg("argmax"),
        arg("input_shape"), arg("kernel_size"), arg("stride") = py::none(), arg("padding") = 0);
  m.def("avgpool2d_forward", &py_avgpool2d_forward, arg("x"), arg("kernel_size"),
        arg("stride") = py::none(), arg("padding") = 0);
  m.def("avgpool2d_backward", &py_avgpool2d_backward, arg("dy"), arg("input_shape"),
        arg("kernel_size"), arg("stride") = py::none(), arg("padding") = 0);
}

}  // namespace nnfast_bindings
