// Bindings of the losses (nnfast/loss.h): cross-entropy for labels or soft targets, NLL, and the
// elementwise MSE, L1, BCE and BCE-with-logits.
#include "checks.h"
#include "register.h"

namespace nnfast_bindings {
using namespace nnfast;

namespace {

// Integer class labels: int64, shape (N,), each in [0, C).
py::array checked_labels(const py::handle& obj, py::ssize_t N, py::ssize_t C, const char* fn) {
  py::array a = checked(obj, fn, "labels", py::dtype::of<int64_t>(), "int64");
  check_shape(a, {N}, fn, "labels");
  const int64_t* y = static_cast<const int64_t*>(a.data());
  for (py::ssize_t i = 0; i < N; i++)
    if (y[i] < 0 || y[i] >= C)
      value_error(fn, "labels[" + std::to_string(i) + "] = " + std::to_string(y[i]) +
                          " is out of range for " + std::to_string(C) + " classes");
  return a;
}

// (N, C) logits and their probabilities.
std::pair<int, int> class_matrix(const py::array& z, const char* fn, const char* name) {
  check_rank(z, 2, fn, name, "(batch, classes)");
  check_nonempty(z, fn, name);
  return {as_int(z.shape(0), fn, "batch"), as_int(z.shape(1), fn, "classes")};
}

py::tuple py_cross_entropy_forward(py::object z_, py::object y_) {
  const char* fn = "cross_entropy_forward";
  py::array z = f32(z_, fn, "logits");
  auto [N, C] = class_matrix(z, fn, "logits");
  py::array y = checked_labels(y_, N, C, fn);
  FloatArray probs = new_array<float>({N, C});
  double loss;
  {
    py::gil_scoped_release release;
    loss = kernels().cross_entropy_forward(probs.mutable_data(), fptr(z), (const int64_t*)y.data(), N, C);
  }
  return py::make_tuple(loss, probs);
}
FloatArray py_cross_entropy_backward(py::object p_, py::object y_, float scale) {
  const char* fn = "cross_entropy_backward";
  py::array p = f32(p_, fn, "probs");
  auto [N, C] = class_matrix(p, fn, "probs");
  py::array y = checked_labels(y_, N, C, fn);
  FloatArray d = new_array<float>({N, C});
  py::gil_scoped_release release;
  kernels().cross_entropy_backward(d.mutable_data(), fptr(p), (const int64_t*)y.data(), N, C, scale);
  return d;
}
py::tuple py_cross_entropy_soft_forward(py::object z_, py::object t_) {
  const char* fn = "cross_entropy_soft_forward";
  py::array z = f32(z_, fn, "logits"), t = f32(t_, fn, "targets");
  auto [N, C] = class_matrix(z, fn, "logits");
  check_shape(t, shape_of(z), fn, "targets");
  FloatArray probs = new_array<float>({N, C});
  double loss;
  {
    py::gil_scoped_release release;
    loss = kernels().cross_entropy_soft_forward(probs.mutable_data(), fptr(z), fptr(t), N, C);
  }
  return py::make_tuple(loss, probs);
}
FloatArray py_cross_entropy_soft_backward(py::object p_, py::object t_, float scale) {
  const char* fn = "cross_entropy_soft_backward";
  py::array p = f32(p_, fn, "probs"), t = f32(t_, fn, "targets");
  auto [N, C] = class_matrix(p, fn, "probs");
  check_shape(t, shape_of(p), fn, "targets");
  FloatArray d = new_array<float>({N, C});
  py::gil_scoped_release release;
  kernels().cross_entropy_soft_backward(d.mutable_data(), fptr(p), fptr(t), N, C, scale);
  return d;
}
double py_nll_forward(py::object lp_, py::object y_) {
  const char* fn = "nll_forward";
  py::array lp = f32(lp_, fn, "logp");
  auto [N, C] = class_matrix(lp, fn, "logp");
  py::array y = checked_labels(y_, N, C, fn);
  py::gil_scoped_release release;
  return kernels().nll_forward(fptr(lp), (const int64_t*)y.data(), N, C);
}
FloatArray py_nll_backward(py::object y_, long num_classes, float scale) {
  const char* fn = "nll_backward";
  const int C = positive(num_classes, fn, "num_classes");
  py::array y0 = checked(y_, fn, "labels", py::dtype::of<int64_t>(), "int64");
  check_rank(y0, 1, fn, "labels", "(batch,)");
  check_nonempty(y0, fn, "labels");
  const int N = as_int(y0.shape(0), fn, "batch");
  as_int((size_t)N * C, fn, "batch * num_classes");
  py::array y = checked_labels(y_, N, C, fn);
  FloatArray d = new_array<float>({N, C});
  py::gil_scoped_release release;
  kernels().nll_backward(d.mutable_data(), (const int64_t*)y.data(), N, C, scale);
  return d;
}

// Elementwise losses: pred and target of the same non-empty shape. The wrappers look their
// kernel up in the table when called (select_isa may have changed the copy since registration).
std::pair<py::array, py::array> pair_args(py::object p_, py::object t_, const char* fn) {
  py::array p = f32(p_, fn, "input"), t = f32(t_, fn, "target");
  check_nonempty(p, fn, "input");
  check_shape(t, shape_of(p), fn, "target");
  return {p, t};
}
using PairLoss = decltype(Kernels::mse_forward);
using PairLossBackward = decltype(Kernels::mse_backward);
auto pair_loss(PairLoss Kernels::*k, const char* fn) {
  return [k, fn](py::object p_, py::object t_) {
    auto [p, t] = pair_args(p_, t_, fn);
    py::gil_scoped_release release;
    return (kernels().*k)(fptr(p), fptr(t), (size_t)p.size());
  };
}
auto pair_loss_backward(PairLossBackward Kernels::*k, const char* fn) {
  return [k, fn](py::object p_, py::object t_, float scale) {
    auto [p, t] = pair_args(p_, t_, fn);
    FloatArray d = new_array<float>(shape_of(p));
    py::gil_scoped_release release;
    (kernels().*k)(d.mutable_data(), fptr(p), fptr(t), (size_t)p.size(), scale);
    return d;
  };
}

}  // namespace

void register_loss(py::module_& m) {
  using py::arg;
  m.def("cross_entropy_forward", &py_cross_entropy_forward, arg("logits"), arg("labels"),
        "(mean loss, probs) for integer labels; stable for any finite logits.");
  m.def("cross_entropy_backward", &py_cross_entropy_backward, arg("probs"), arg("labels"),
        arg("scale") = 1.0f);
  m.def("cross_entropy_soft_forward", &py_cross_entropy_soft_forward, arg("logits"),
        arg("targets"), "(mean loss, probs) for one-hot / probability targets.");
  m.def("cross_entropy_soft_backward", &py_cross_entropy_soft_backward, arg("probs"),
        arg("targets"), arg("scale") = 1.0f);
  m.def("nll_forward", &py_nll_forward, arg("logp"), arg("labels"));
  m.def("nll_backward", &py_nll_backward, arg("labels"), arg("num_classes"), arg("scale") = 1.0f);
  m.def("mse_forward", pair_loss(&Kernels::mse_forward, "mse_forward"), arg("pred"),
        arg("target"));
  m.def("mse_backward", pair_loss_backward(&Kernels::mse_backward, "mse_backward"), arg("pred"),
        arg("target"), arg("scale") = 1.0f);
  m.def("l1_forward", pair_loss(&Kernels::l1_forward, "l1_forward"), arg("pred"), arg("target"));
  m.def("l1_backward", pair_loss_backward(&Kernels::l1_backward, "l1_backward"), arg("pred"),
        arg("target"), arg("scale") = 1.0f);
  m.def("bce_forward", pair_loss(&Kernels::bce_forward, "bce_forward"), arg("p"), arg("target"));
  m.def("bce_backward", pair_loss_backward(&Kernels::bce_backward, "bce_backward"), arg("p"),
        arg("target"), arg("scale") = 1.0f);
  m.def("bce_with_logits_forward",
        pair_loss(&Kernels::bce_with_logits_forward, "bce_with_logits_forward"), arg("z"),
        arg("target"));
  m.def("bce_with_logits_backward",
        pair_loss_backward(&Kernels::bce_with_logits_backward, "bce_with_logits_backward"),
        arg("z"), arg("target"), arg("scale") = 1.0f);
}

}  // namespace nnfast_bindings
