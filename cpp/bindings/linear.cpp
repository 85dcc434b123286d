// Bindings of Linear (nnfast/gemm.h: linear_forward / linear_backward on the transposed weight,
// with the fused activation).
#include "checks.h"
#include "register.h"

namespace nnfast_bindings {
using namespace nnfast;

namespace {

// x (B, IN), wt (IN, LD) (the weight stored transposed, rows padded to LD >= OUT): returns
// (B, IN, OUT) after checking them; OUT is out_features, or LD when that is None.
std::tuple<int, int, int> linear_dims(const py::array& x, const py::array& wt, py::object out,
                                      const char* fn) {
  check_rank(wt, 2, fn, "wt", "(in_features, out_features)");
  check_rank(x, 2, fn, "x", "(batch, in_features)");
  check_nonempty(x, fn, "x");
  if (x.shape(1) != wt.shape(0))
    value_error(fn, "x must have " + std::to_string(wt.shape(0)) + " features to match wt " +
                        shape_str(shape_of(wt)) + ", got shape " + shape_str(shape_of(x)));
  if (!out.is_none() && !py::isinstance<py::int_>(out))
    throw py::type_error(std::string(fn) + ": out_features must be an int or None");
  const int OUT = out.is_none() ? as_int(wt.shape(1), fn, "out_features")
                                : as_int(out.cast<long long>(), fn, "out_features");
  if (OUT < 1 || OUT > wt.shape(1))
    value_error(fn, "out_features must be between 1 and wt's " + std::to_string(wt.shape(1)) +
                        " columns, got " + std::to_string(OUT));
  return {as_int(x.shape(0), fn, "batch"), as_int(wt.shape(0), fn, "in_features"), OUT};
}

// The activations Linear's kernels fuse, by name.
Activation activation_named(const std::string& name, const char* fn, const char* arg) {
  if (name == "relu") return Activation::relu;
  if (name == "sigmoid") return Activation::sigmoid;
  if (name != "none")
    value_error(fn, std::string(arg) + " must be 'none', 'relu' or 'sigmoid', got '" + name + "'");
  return Activation::none;
}

py::object py_linear_forward(py::object x_, py::object wt_, py::object b_, py::object out_,
                             const std::string& activation, bool return_nonzeros) {
  const char* fn = "linear_forward";
  const Activation act = activation_named(activation, fn, "activation");
  py::array x = f32(x_, fn, "x"), wt = f32(wt_, fn, "wt");
  auto [B, IN, OUT] = linear_dims(x, wt, out_, fn);
  py::array b;
  if (!b_.is_none()) {
    b = f32(b_, fn, "b");
    check_shape(b, {OUT}, fn, "b");
  }
  FloatArray y = new_array<float>({B, OUT});
  long nonzeros;
  const int ldw = (int)wt.shape(1);
  const int nt = get_num_threads();  // read once: the workspace's size depends on it
  const bool bf16 = bf16_products();  // so does this
  Workspace ws(kernels().linear_forward_workspace_size(B, IN, OUT, ldw, nt, bf16));
  {
    py::gil_scoped_release release;
    nonzeros = kernels().linear_forward(y.mutable_data(), fptr(x), fptr(wt), ldw,
                                        b_.is_none() ? nullptr : fptr(b), B, IN, OUT, ws.data, nt,
                                        act, bf16);
  }
  if (return_nonzeros) return py::make_tuple(y, nonzeros);
  return std::move(y);
}

py::tuple py_linear_backward(py::object dy_, py::object x_, py::object wt_, py::object dwt_,
                             py::object db_, bool need_dx, bool need_db, bool accumulate,
                             py::object out_, long long x_nonzeros,
                             const std::string& dx_activation) {
  const char* fn = "linear_backward";
  const Activation act = activation_named(dx_activation, fn, "dx_activation");
  py::array x = f32(x_, fn, "x"), wt = f32(wt_, fn, "wt"), dy = f32(dy_, fn, "dy");
  auto [B, IN, OUT] = linear_dims(x, wt, out_, fn);
  if (x_nonzeros < -1 || x_nonzeros > (long long)B * IN)
    value_error(fn, "x_nonzeros must be -1 (count them) or between 0 and x's " +
                        std::to_string((long long)B * IN) + " entries, got " +
                        std::to_string(x_nonzeros));
  check_shape(dy, {B, OUT}, fn, "dy");
  FloatArray dwt = accumulator(dwt_, shape_of(wt), fn, "dwt");
  if (dwt_.is_none() && OUT < wt.shape(1)) {  // a new dwt: its padding columns zero, not garbage
    const size_t ld = (size_t)wt.shape(1);
    for (size_t k = 0; k < (size_t)IN; k++)
      std::fill(dwt.mutable_data() + k * ld + OUT, dwt.mutable_data() + (k + 1) * ld, 0.0f);
  }
  FloatArray db, dx;
  if (need_db) db = accumulator(db_, {OUT}, fn, "db");
  if (need_dx) dx = new_array<float>({B, IN});
  float* dxp = need_dx ? dx.mutable_data() : nullptr;
  float* dbp = need_db ? db.mutable_data() : nullptr;
  const bool add = accumulates(accumulate, dwt_, dwt, db_, need_db ? &db : nullptr);
  const int ldw = (int)wt.shape(1);
  const int nt = get_num_threads();  // read once: the workspace's size depends on it
  const bool bf16 = bf16_products();  // so does this
  Workspace ws(kernels().linear_backward_workspace_size(B, IN, OUT, ldw, nt, bf16));
  {
    py::gil_scoped_release release;
    kernels().linear_backward(dxp, dwt.mutable_data(), dbp, fptr(dy), fptr(x), fptr(wt), ldw, B,
                              IN, OUT, ws.data, nt, add, (long)x_nonzeros, act, bf16);
  }
  return py::make_tuple(optional(dx, need_dx), dwt, optional(db, need_db));
}

}  // namespace

void register_linear(py::module_& m) {
  using py::arg;
  m.def("linear_forward", &py_linear_forward, arg("x"), arg("wt"), arg("b") = py::none(),
        arg("out_features") = py::none(), arg("activation") = "none",
        arg("return_nonzeros") = false,
        "y (B,OUT) = act(x (B,IN) @ wt[:, :OUT] + b); wt (IN, LD) is the weight w (OUT,IN) "
        "transposed, its rows maybe padded (OUT = out_features, default LD); act 'none', "
        "'relu' or 'sigmoid'. return_nonzeros: (y, n) with n x's nonzero count when the "
        "kernel counted it (to choose its zero-skipping path), else -1; linear_backward takes "
        "it as x_nonzeros.");
  m.def("linear_backward", &py_linear_backward, arg("dy"), arg("x"), arg("wt"),
        arg("dwt") = py::none(), arg("db") = py::none(), arg("need_dx") = true,
        arg("need_db") = true, arg("accumulate") = true, arg("out_features") = py::none(),
        arg("x_nonzeros") = -1, arg("dx_activation") = "none",
        "(dx, dwt, db); dwt (IN,LD) / db accumulate in place when given (overwritten if not "
        "accumulate); dwt's padding columns are never written (zeros in a new one). "
        "x_nonzeros: x's nonzero count from linear_forward (saves counting again; it only picks "
        "between two paths that compute the same sums), -1 to count. dx_activation 'relu' or 'sigmoid': x is that "
        "activation's output and dx the gradient at its input (relu_backward / "
        "sigmoid_backward of dy @ wt^T with x).");
}

}  // namespace nnfast_bindings
