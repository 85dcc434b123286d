// Bindings of the dense family (gemm.cu): sgemm, matmul, linear. Sizes are explicit; every array
// is checked to hold the matrix its size and leading dimension span.
#include "bindings.h"
#include "cuda_kernels.h"

namespace nnfast {
namespace cuda {
namespace {

Activation activation_of(const std::string& name, const char* fn) {
  if (name == "none") return Activation::none;
  if (name == "relu") return Activation::relu;
  if (name == "sigmoid") return Activation::sigmoid;
  throw py::value_error(std::string(fn) + ": activation must be 'none', 'relu' or 'sigmoid'");
}

void py_sgemm(bool ta, bool tb, int M, int N, int K, float alpha, DeviceArray* A, int lda,
              DeviceArray* B, int ldb, float beta, DeviceArray* C, int ldc) {
  const char* fn = "sgemm";
  need(A, ta ? span(K, M, lda, fn) : span(M, K, lda, fn), fn, "A");
  need(B, tb ? span(N, K, ldb, fn) : span(K, N, ldb, fn), fn, "B");
  need(C, span(M, N, ldc, fn), fn, "C");
  check_cuda(sgemm(ta, tb, M, N, K, alpha, f32(A, fn, "A"), lda, f32(B, fn, "B"), ldb, beta,
                   f32(C, fn, "C"), ldc), fn);
}

void py_matmul_forward(DeviceArray* c, DeviceArray* a, DeviceArray* b, int M, int N, int K,
                       bool ta, bool tb) {
  const char* fn = "matmul_forward";
  need(a, (size_t)M * K, fn, "a");
  need(b, (size_t)K * N, fn, "b");
  need(c, (size_t)M * N, fn, "c");
  check_cuda(matmul_forward(f32(c, fn, "c"), f32(a, fn, "a"), f32(b, fn, "b"), M, N, K, ta, tb),
             fn);
}

void py_matmul_backward(DeviceArray* da, DeviceArray* db, DeviceArray* dc, DeviceArray* a,
                        DeviceArray* b, int M, int N, int K, bool ta, bool tb) {
  const char* fn = "matmul_backward";
  need(a, (size_t)M * K, fn, "a");
  need(da, (size_t)M * K, fn, "da");
  need(b, (size_t)K * N, fn, "b");
  need(db, (size_t)K * N, fn, "db");
  need(dc, (size_t)M * N, fn, "dc");
  check_cuda(matmul_backward(f32_or_null(da, fn, "da"), f32_or_null(db, fn, "db"), f32(dc, fn, "dc"),
                             f32(a, fn, "a"), f32(b, fn, "b"), M, N, K, ta, tb), fn);
}

void py_linear_forward(DeviceArray* y, DeviceArray* x, DeviceArray* wt, int ldw, DeviceArray* bias,
                       int B, int IN, int OUT, const std::string& act) {
  const char* fn = "linear_forward";
  need(x, (size_t)B * IN, fn, "x");
  need(wt, span(IN, OUT, ldw, fn), fn, "wt");
  need(bias, OUT, fn, "bias");
  need(y, (size_t)B * OUT, fn, "y");
  check_cuda(linear_forward(f32(y, fn, "y"), f32(x, fn, "x"), f32(wt, fn, "wt"), ldw,
                            f32_or_null(bias, fn, "bias"), B, IN, OUT, activation_of(act, fn)), fn);
}

void py_linear_backward(DeviceArray* dx, DeviceArray* dwt, DeviceArray* dbias, DeviceArray* dy,
                        DeviceArray* x, DeviceArray* wt, int ldw, int B, int IN, int OUT,
                        bool accumulate, const std::string& dx_act) {
  const char* fn = "linear_backward";
  need(dy, (size_t)B * OUT, fn, "dy");
  need(x, (size_t)B * IN, fn, "x");
  need(dx, (size_t)B * IN, fn, "dx");
  need(wt, span(IN, OUT, ldw, fn), fn, "wt");
  need(dwt, span(IN, OUT, ldw, fn), fn, "dwt");
  need(dbias, OUT, fn, "dbias");
  check_cuda(linear_backward(f32_or_null(dx, fn, "dx"), f32_or_null(dwt, fn, "dwt"), f32_or_null(dbias, fn, "dbias"),
                             f32(dy, fn, "dy"), f32(x, fn, "x"), f32(wt, fn, "wt"), ldw, B, IN,
                             OUT, accumulate, activation_of(dx_act, fn)), fn);
}

}  // namespace

void bind_dense(py::module_& m) {
  using py::arg;
  m.def("sgemm", &py_sgemm, arg("trans_a"), arg("trans_b"), arg("M"), arg("N"), arg("K"),
        arg("alpha"), arg("A"), arg("lda"), arg("B"), arg("ldb"), arg("beta"), arg("C"),
        arg("ldc"), "C = alpha op(A) op(B) + beta C (the CPU sgemm's arguments, device arrays).");
  m.def("matmul_forward", &py_matmul_forward, arg("c"), arg("a"), arg("b"), arg("M"), arg("N"),
        arg("K"), arg("trans_a"), arg("trans_b"));
  m.def("matmul_backward", &py_matmul_backward, arg("da").none(true), arg("db").none(true),
        arg("dc"), arg("a"), arg("b"), arg("M"), arg("N"), arg("K"), arg("trans_a"),
        arg("trans_b"));
  m.def("linear_forward", &py_linear_forward, arg("y"), arg("x"), arg("wt"), arg("ldw"),
        arg("bias").none(true), arg("B"), arg("IN"), arg("OUT"), arg("activation"));
  m.def("linear_backward", &py_linear_backward, arg("dx").none(true), arg("dwt").none(true),
        arg("dbias").none(true), arg("dy"), arg("x"), arg("wt"), arg("ldw"), arg("B"), arg("IN"),
        arg("OUT"), arg("accumulate"), arg("dx_activation"));
}

}  // namespace cuda
}  // namespace nnfast
