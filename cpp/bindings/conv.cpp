// Bindings of Conv2d (nnfast/conv.h), and of Conv2d -> ReLU -> MaxPool2d fused in one pass.
#include "checks.h"
#include "register.h"

namespace nnfast_bindings {
using namespace nnfast;

namespace {

// The geometry of a convolution of x (N, C, H, W) by w (OC, C, KH, KW), checked.
Conv2dShape conv_shape(const py::array& x, const py::array& w, py::object stride,
                       py::object padding, const char* fn) {
  check_rank(x, 4, fn, "x", "(N, C, H, W)");
  check_rank(w, 4, fn, "w", "(out_channels, in_channels, kh, kw)");
  check_nonempty(x, fn, "x");
  check_nonempty(w, fn, "w");
  if (x.shape(1) != w.shape(1))
    value_error(fn, "x has " + std::to_string(x.shape(1)) + " channels but w " +
                        shape_str(shape_of(w)) + " expects " + std::to_string(w.shape(1)));
  auto [sh, sw] = int_pair(stride, fn, "stride");
  auto [ph, pw] = int_pair(padding, fn, "padding");
  Conv2dShape s{as_int(x.shape(0), fn, "N"),  as_int(x.shape(1), fn, "C"),
                as_int(x.shape(2), fn, "H"),  as_int(x.shape(3), fn, "W"),
                as_int(w.shape(0), fn, "OC"), as_int(w.shape(2), fn, "KH"),
                as_int(w.shape(3), fn, "KW"), sh, sw, ph, pw};
  check_geometry(s, fn);
  return s;
}

// The checked operands of a convolution's forward pass (bias optional).
struct ConvForwardArgs {
  py::array x, w, b;
  bool has_bias;
  Conv2dShape s;
  const float* bias() const { return has_bias ? fptr(b) : nullptr; }
};
ConvForwardArgs conv_forward_args(py::object x_, py::object w_, py::object b_, py::object stride,
                                  py::object padding, const char* fn) {
  ConvForwardArgs a{f32(x_, fn, "x"), f32(w_, fn, "w"), py::array(), !b_.is_none(), {}};
  a.s = conv_shape(a.x, a.w, stride, padding, fn);
  if (!b_.is_none()) {
    a.b = f32(b_, fn, "b");
    check_shape(a.b, {a.s.OC}, fn, "b");
  }
  return a;
}

FloatArray py_conv2d_forward(py::object x_, py::object w_, py::object b_, py::object stride,
                             py::object padding) {
  const ConvForwardArgs a = conv_forward_args(x_, w_, b_, stride, padding, "conv2d_forward");
  const Conv2dShape& s = a.s;
  FloatArray y = new_array<float>({s.N, s.OC, s.OH(), s.OW()});
  const int nt = get_num_threads();  // read once: the workspace holds one slice per thread
  Scratch workspace(kernels().conv2d_workspace_size(s, nt));
  py::gil_scoped_release release;
  kernels().conv2d_forward(y.mutable_data(), fptr(a.x), fptr(a.w), a.bias(), s, workspace.data, nt);
  return y;
}

// The outputs of a convolution's backward pass: dw (and db) given or new, dx new when needed,
// and whether the kernel adds into dw / db or overwrites them.
struct ConvGrads {
  FloatArray dw, db, dx;
  bool need_dx, need_db, add;
  ConvGrads(const py::array& x, const py::array& w, const Conv2dShape& s, py::object dw_,
            py::object db_, bool need_dx_, bool need_db_, bool accumulate, const char* fn)
      : dw(accumulator(dw_, shape_of(w), fn, "dw")), need_dx(need_dx_), need_db(need_db_) {
    if (need_db) db = accumulator(db_, {s.OC}, fn, "db");
    if (need_dx) dx = new_array<float>(shape_of(x));
    add = accumulates(accumulate, dw_, dw, db_, need_db ? &db : nullptr);
  }
  float* dxp() { return need_dx ? dx.mutable_data() : nullptr; }
  float* dbp() { return need_db ? db.mutable_data() : nullptr; }
  py::tuple result() const { return py::make_tuple(optional(dx, need_dx), dw, optional(db, need_db)); }
};

py::tuple py_conv2d_backward(py::object dy_, py::object x_, py::object w_, py::object stride,
                             py::object padding, py::object dw_, py::object db_, bool need_dx,
                             bool need_db, bool accumulate) {
  const char* fn = "conv2d_backward";
  py::array x = f32(x_, fn, "x"), w = f32(w_, fn, "w"), dy = f32(dy_, fn, "dy");
  Conv2dShape s = conv_shape(x, w, stride, padding, fn);
  check_shape(dy, {s.N, s.OC, s.OH(), s.OW()}, fn, "dy");
  ConvGrads grads(x, w, s, dw_, db_, need_dx, need_db, accumulate, fn);
  const int nt = get_num_threads();  // read once: the workspace holds one slice per thread
  Scratch workspace(kernels().conv2d_workspace_size(s, nt));
  {
    py::gil_scoped_release release;
    kernels().conv2d_backward(grads.dxp(), grads.dw.mutable_data(), grads.dbp(), fptr(dy), fptr(x), fptr(w),
                    s, workspace.data, nt, grads.add);
  }
  return grads.result();
}

// Conv2d -> ReLU -> MaxPool2d in one kernel: (y pooled, argmax), as the three bindings in turn.
py::tuple py_conv2d_relu_maxpool_forward(py::object x_, py::object w_, py::object b_,
                                         py::object stride, py::object padding,
                                         py::object pool_kernel, py::object pool_stride,
                                         py::object pool_padding) {
  const char* fn = "conv2d_relu_maxpool_forward";
  const ConvForwardArgs a = conv_forward_args(x_, w_, b_, stride, padding, fn);
  const Conv2dShape& s = a.s;
  Pool2dShape p = pool_shape({s.N, s.OC, s.OH(), s.OW()}, pool_kernel, pool_stride, pool_padding, fn);
  FloatArray y = new_array<float>({p.N, p.C, p.OH(), p.OW()});
  py::array_t<int32_t> argmax = new_array<int32_t>({p.N, p.C, p.OH(), p.OW()});
  const int nt = get_num_threads();  // read once: the workspace holds one slice per thread
  Scratch workspace(kernels().conv2d_workspace_size(s, nt));
  {
    py::gil_scoped_release release;
    kernels().conv2d_relu_maxpool_forward(y.mutable_data(), argmax.mutable_data(), fptr(a.x), fptr(a.w),
                                a.bias(), s, p, workspace.data, nt);
  }
  return py::make_tuple(y, argmax);
}

// The gradient path of conv2d_relu_maxpool_forward: conv2d_backward's (dx, dw, db) from the pooled
// gradient g, the pooled output y and argmax (what that forward returned).
py::tuple py_conv2d_relu_maxpool_backward(py::object g_, py::object y_, py::object argmax_,
                                          py::object x_, py::object w_, py::object stride,
                                          py::object padding, py::object pool_kernel,
                                          py::object pool_stride, py::object pool_padding,
                                          py::object dw_, py::object db_, bool need_dx,
                                          bool need_db, bool accumulate) {
  const char* fn = "conv2d_relu_maxpool_backward";
  py::array x = f32(x_, fn, "x"), w = f32(w_, fn, "w"), g = f32(g_, fn, "g"), y = f32(y_, fn, "y");
  Conv2dShape s = conv_shape(x, w, stride, padding, fn);
  Pool2dShape p = pool_shape({s.N, s.OC, s.OH(), s.OW()}, pool_kernel, pool_stride, pool_padding, fn);
  const Shape pooled{p.N, p.C, p.OH(), p.OW()};
  check_shape(g, pooled, fn, "g");
  check_shape(y, pooled, fn, "y");
  py::array am = checked(argmax_, fn, "argmax", py::dtype::of<int32_t>(), "int32");
  check_shape(am, pooled, fn, "argmax");
  const int32_t* a = checked_argmax(am, p, fn);
  ConvGrads grads(x, w, s, dw_, db_, need_dx, need_db, accumulate, fn);
  const int nt = get_num_threads();  // read once: the workspace holds one slice per thread
  Scratch workspace(kernels().conv2d_workspace_size(s, nt));
  {
    py::gil_scoped_release release;
    kernels().conv2d_relu_maxpool_backward(grads.dxp(), grads.dw.mutable_data(), grads.dbp(), fptr(g),
                                 fptr(y), a, p, fptr(x), fptr(w), s, workspace.data, nt, grads.add);
  }
  return grads.result();
}

}  // namespace

void register_conv(py::module_& m) {
  using py::arg;
  m.def("conv2d_forward", &py_conv2d_forward, arg("x"), arg("w"), arg("b") = py::none(),
        arg("stride") = 1, arg("padding") = 0, "y (N,OC,OH,OW) = conv2d(x (N,C,H,W), w) + b.");
  m.def("conv2d_relu_maxpool_forward", &py_conv2d_relu_maxpool_forward, arg("x"), arg("w"),
        arg("b") = py::none(), arg("stride") = 1, arg("padding") = 0, arg("pool_kernel") = 2,
        arg("pool_stride") = py::none(), arg("pool_padding") = 0,
        "(y, argmax) = maxpool2d_forward(relu_forward(conv2d_forward(x, w, b)), ...) in one pass.");
  m.def("conv2d_relu_maxpool_backward", &py_conv2d_relu_maxpool_backward, arg("g"), arg("y"),
        arg("argmax"), arg("x"), arg("w"), arg("stride") = 1, arg("padding") = 0,
        arg("pool_kernel") = 2, arg("pool_stride") = py::none(), arg("pool_padding") = 0,
        arg("dw") = py::none(), arg("db") = py::none(), arg("need_dx") = true,
        arg("need_db") = true, arg("accumulate") = true,
        "conv2d_backward of maxpool2d_backward of relu_backward(g, y), in one pass: (dx, dw, db).");
  m.def("conv2d_backward", &py_conv2d_backward, arg("dy"), arg("x"), arg("w"), arg("stride") = 1,
        arg("padding") = 0, arg("dw") = py::none(), arg("db") = py::none(),
        arg("need_dx") = true, arg("need_db") = true, arg("accumulate") = true,
        "(dx, dw, db); dw / db accumulate in place when given (overwritten if not accumulate).");
}

}  // namespace nnfast_bindings
