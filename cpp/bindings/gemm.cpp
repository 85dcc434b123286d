// Bindings of the GEMM family (nnfast/gemm.h): sgemm and the matrix product's forward / backward.
#include "checks.h"
#include "register.h"

namespace nnfast_bindings {
using namespace nnfast;

namespace {

// Shapes (M, N, K) of C = op(A) op(B) for dense a, b.
std::tuple<int, int, int> matmul_dims(const py::array& a, const py::array& b, bool ta, bool tb,
                                      const char* fn) {
  check_rank(a, 2, fn, "a", "(rows, cols)");
  check_rank(b, 2, fn, "b", "(rows, cols)");
  const int M = as_int(ta ? a.shape(1) : a.shape(0), fn, "M");
  const int K = as_int(ta ? a.shape(0) : a.shape(1), fn, "K");
  const int Kb = as_int(tb ? b.shape(1) : b.shape(0), fn, "K");
  const int N = as_int(tb ? b.shape(0) : b.shape(1), fn, "N");
  if (K != Kb)
    value_error(fn, "inner dimensions differ: op(a) is " + shape_str({M, K}) + ", op(b) is " +
                        shape_str({Kb, N}));
  return {M, N, K};
}

py::array py_sgemm(py::object a_, py::object b_, bool ta, bool tb, float alpha, float beta,
                   py::object c_) {
  const char* fn = "sgemm";
  py::array a = f32(a_, fn, "a"), b = f32(b_, fn, "b");
  auto [M, N, K] = matmul_dims(a, b, ta, tb, fn);
  py::array c;
  if (c_.is_none()) {
    c = new_array<float>({M, N});
    beta = 0.0f;
  } else {
    c = f32(c_, fn, "c", true);
    check_shape(c, {M, N}, fn, "c");
  }
  const int lda = (int)a.shape(1), ldb = (int)b.shape(1);
  const int nt = get_num_threads();  // read once: the workspace's size depends on it
  Workspace ws(kernels().sgemm_workspace_size(ta, tb, M, N, K, lda, ldb, nt));
  {
    py::gil_scoped_release release;
    kernels().sgemm(ta, tb, M, N, K, alpha, fptr(a), lda, fptr(b), ldb, beta, mptr(c), N, ws.data,
                    nt);
  }
  return c;
}

FloatArray py_matmul_forward(py::object a_, py::object b_, bool ta, bool tb) {
  const char* fn = "matmul_forward";
  py::array a = f32(a_, fn, "a"), b = f32(b_, fn, "b");
  auto [M, N, K] = matmul_dims(a, b, ta, tb, fn);
  FloatArray c = new_array<float>({M, N});
  const int nt = get_num_threads();  // read once: the workspace's size depends on it
  Workspace ws(kernels().matmul_forward_workspace_size(M, N, K, ta, tb, nt));
  py::gil_scoped_release release;
  kernels().matmul_forward(c.mutable_data(), fptr(a), fptr(b), M, N, K, ta, tb, ws.data, nt);
  return c;
}

py::tuple py_matmul_backward(py::object dc_, py::object a_, py::object b_, bool ta, bool tb) {
  const char* fn = "matmul_backward";
  py::array a = f32(a_, fn, "a"), b = f32(b_, fn, "b"), dc = f32(dc_, fn, "dc");
  auto [M, N, K] = matmul_dims(a, b, ta, tb, fn);
  check_shape(dc, {M, N}, fn, "dc");
  FloatArray da = new_array<float>(shape_of(a)), db = new_array<float>(shape_of(b));
  const int nt = get_num_threads();  // read once: the workspace's size depends on it
  Workspace ws(kernels().matmul_backward_workspace_size(M, N, K, ta, tb, nt));
  {
    py::gil_scoped_release release;
    kernels().matmul_backward(da.mutable_data(), db.mutable_data(), fptr(dc), fptr(a), fptr(b), M,
                              N, K, ta, tb, ws.data, nt);
  }
  return py::make_tuple(da, db);
}

}  // namespace

void register_gemm(py::module_& m) {
  using py::arg;
  m.def("sgemm", &py_sgemm, arg("a"), arg("b"), arg("trans_a") = false, arg("trans_b") = false,
        arg("alpha") = 1.0f, arg("beta") = 0.0f, arg("c") = py::none(),
        "c = alpha * op(a) @ op(b) + beta * c; c is written in place when given.");
  m.def("matmul_forward", &py_matmul_forward, arg("a"), arg("b"), arg("trans_a") = false,
        arg("trans_b") = false, "c (M,N) = op(a) @ op(b).");
  m.def("matmul_backward", &py_matmul_backward, arg("dc"), arg("a"), arg("b"),
        arg("trans_a") = false, arg("trans_b") = false, "(da, db) for c = op(a) @ op(b).");
}

}  // namespace nnfast_bindings
