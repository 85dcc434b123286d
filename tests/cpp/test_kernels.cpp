// Standalone C++ test of the kernels, no Python: each family on small shapes against plain
// loops written here. Built by `scripts/sanitize.sh` under AddressSanitizer + UBSan (and usable
// under valgrind); exits non-zero on the first mismatch.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "nnfast/kernels.h"

using namespace nnfast;

static int failures = 0;
static std::mt19937 rng(7);

// A kernel workspace of n floats, 64-byte aligned, as the kernels take it (null when n is 0).
struct Workspace {
  float* data;
  explicit Workspace(size_t n)
      : data(n ? static_cast<float*>(std::aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64))
               : nullptr) {}
  ~Workspace() { std::free(data); }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
};

static std::vector<float> randn(size_t n) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

static void expect_close(const char* what, const std::vector<float>& a,
                         const std::vector<float>& b, float tol = 1e-4f) {
  for (size_t i = 0; i < a.size(); i++)
    if (!(std::fabs(a[i] - b[i]) <= tol * (1.0f + std::fabs(b[i])))) {
      std::printf("FAIL %s at %zu: %g vs %g\n", what, i, a[i], b[i]);
      failures++;
      return;
    }
}

static void test_gemm() {
  // {5, 7, 20000}: a small output over a long K takes the K-chunked path; {100, 10, 784},
  // {17, 3, 1000} and {70, 1, 37} without trans_a, dot products of A's rows.
  const int shapes[][3] = {{1, 1, 1},     {7, 33, 5},    {100, 10, 784}, {129, 65, 300},
                           {17, 3, 1000}, {5, 7, 20000}, {70, 1, 37}};
  for (auto& s : shapes)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++) {
        const int M = s[0], N = s[1], K = s[2], lda = (ta ? M : K) + 1, ldb = (tb ? K : N) + 2;
        auto A = randn((size_t)(ta ? K : M) * lda), B = randn((size_t)(tb ? N : K) * ldb);
        auto C = randn((size_t)M * N), R = C;
        const int nt = get_num_threads();
        Workspace ws(sgemm_workspace_size(ta, tb, M, N, K, lda, ldb, nt));
        sgemm(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, 0.25f, C.data(), N, ws.data, nt);
        sgemm_reference(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, 0.25f, R.data(), N);
        expect_close("sgemm", C, R, 1e-3f);
      }
}

// x rounded to bfloat16, to nearest even (NaN kept), as a float.
static float bf16_round(float x) {
  if (std::isnan(x)) return x;
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
  std::memcpy(&x, &u, 4);
  return x;
}

// gemm_bf16 (where this copy runs it) against the plain loop on the operands rounded to bf16:
// odd K, partial tiles, both layouts of each operand, beta 1, and a bias with a ReLU.
static void test_gemm_bf16() {
  if (!gemm_bf16_available()) return;
  const int shapes[][3] = {{1, 1, 1}, {7, 33, 5}, {100, 10, 784}, {23, 65, 600}, {64, 128, 9}};
  for (auto& s : shapes)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++) {
        const int M = s[0], N = s[1], K = s[2], lda = (ta ? M : K) + 1, ldb = (tb ? K : N) + 2;
        auto A = randn((size_t)(ta ? K : M) * lda), B = randn((size_t)(tb ? N : K) * ldb);
        auto bias = randn(N), C = randn((size_t)M * N), R = C, R2 = C;
        auto Ar = A, Br = B;
        for (auto& v : Ar) v = bf16_round(v);
        for (auto& v : Br) v = bf16_round(v);
        const int nt = get_num_threads();
        Workspace ws(gemm_bf16_workspace_size(M, N, K));
        gemm_bf16(ta, tb, M, N, K, A.data(), lda, B.data(), ldb, 1.0f, C.data(), N, {}, ws.data,
                  nt);
        sgemm_reference(ta, tb, M, N, K, 1.0f, Ar.data(), lda, Br.data(), ldb, 1.0f, R.data(), N);
        expect_close("gemm_bf16", C, R);
        GemmEpilogue e;
        e.col_bias = bias.data();
        e.act = Activation::relu;
        gemm_bf16(ta, tb, M, N, K, A.data(), lda, B.data(), ldb, 0.0f, C.data(), N, e, ws.data, nt);
        sgemm_reference(ta, tb, M, N, K, 1.0f, Ar.data(), lda, Br.data(), ldb, 0.0f, R2.data(), N);
        for (int i = 0; i < M; i++)
          for (int j = 0; j < N; j++) {
            float& r = R2[(size_t)i * N + j];
            r = std::max(r + bias[j], 0.0f);
          }
        expect_close("gemm_bf16 (bias, relu)", C, R2);
      }
}

static void test_conv_and_linear() {
  Conv2dShape s{2, 3, 9, 8, 4, 3, 2, 2, 1, 1, 0};
  const int OH = s.OH(), OW = s.OW();
  auto x = randn((size_t)s.N * s.C * s.H * s.W), w = randn((size_t)s.OC * s.C * s.KH * s.KW);
  auto b = randn(s.OC), dy = randn((size_t)s.N * s.OC * OH * OW);
  std::vector<float> y(dy.size());
  Workspace ws(conv2d_workspace_size(s, get_num_threads()));
  conv2d_forward(y.data(), x.data(), w.data(), b.data(), s, ws.data, get_num_threads());
  std::vector<float> ry(y.size()), rdx(x.size(), 0.0f), rdw(w.size(), 0.0f), rdb(s.OC, 0.0f);
  for (int n = 0; n < s.N; n++)
    for (int o = 0; o < s.OC; o++)
      for (int oh = 0; oh < OH; oh++)
        for (int ow = 0; ow < OW; ow++) {
          const size_t yi = (((size_t)n * s.OC + o) * OH + oh) * OW + ow;
          float acc = b[o];
          rdb[o] += dy[yi];
          for (int c = 0; c < s.C; c++)
            for (int kh = 0; kh < s.KH; kh++)
              for (int kw = 0; kw < s.KW; kw++) {
                const int ih = oh * s.SH - s.PH + kh, iw = ow * s.SW - s.PW + kw;
                if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
                const size_t xi = (((size_t)n * s.C + c) * s.H + ih) * s.W + iw;
                const size_t wi = (((size_t)o * s.C + c) * s.KH + kh) * s.KW + kw;
                acc += x[xi] * w[wi];
                rdx[xi] += dy[yi] * w[wi];
                rdw[wi] += dy[yi] * x[xi];
              }
          ry[yi] = acc;
        }
  expect_close("conv2d_forward", y, ry);
  std::vector<float> dx(x.size()), dw(w.size(), 0.0f), db(s.OC, 0.0f);
  conv2d_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), s, ws.data,
                  get_num_threads());
  expect_close("conv2d_backward dx", dx, rdx);
  expect_close("conv2d_backward dw", dw, rdw);
  expect_close("conv2d_backward db", db, rdb);

  const int B = 5, IN = 7, OUT = 3;
  auto lx = randn(B * IN), lwt = randn(IN * OUT), lb = randn(OUT);  // lwt: the weight transposed
  std::vector<float> ly(B * OUT), rly(B * OUT);
  const int nt = get_num_threads();
  Workspace lws(linear_forward_workspace_size(B, IN, OUT, OUT, nt));
  linear_forward(ly.data(), lx.data(), lwt.data(), OUT, lb.data(), B, IN, OUT, lws.data, nt);
  for (int i = 0; i < B; i++)
    for (int o = 0; o < OUT; o++) {
      float acc = lb[o];
      for (int k = 0; k < IN; k++) acc += lx[i * IN + k] * lwt[k * OUT + o];
      rly[i * OUT + o] = acc;
    }
  expect_close("linear_forward", ly, rly);
}

// Inputs mostly zero take linear.cpp's path that skips them: ragged sizes (inputs past a vector,
// outputs over two 256-column chunks, rows of 300 floats at no alignment; more rows than the
// forward lists at a time) against plain loops, overwriting and accumulating dwt.
static void test_linear_sparse_inputs(int B, int IN, int OUT) {
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  auto x = randn((size_t)B * IN), wt = randn((size_t)IN * OUT), b = randn(OUT);
  auto dy = randn((size_t)B * OUT), dwt0 = randn((size_t)IN * OUT);
  for (auto& v : x) v = u(rng) < 0.15f ? v : 0.0f;
  std::vector<float> y((size_t)B * OUT), ry(y.size()), rdwt((size_t)IN * OUT, 0.0f);
  const int nt = get_num_threads();
  Workspace fws(linear_forward_workspace_size(B, IN, OUT, OUT, nt));
  linear_forward(y.data(), x.data(), wt.data(), OUT, b.data(), B, IN, OUT, fws.data, nt);
  for (int i = 0; i < B; i++)
    for (int o = 0; o < OUT; o++) {
      float acc = b[o];
      for (int k = 0; k < IN; k++) acc += x[i * IN + k] * wt[(size_t)k * OUT + o];
      ry[(size_t)i * OUT + o] = acc;
    }
  expect_close("linear_forward (sparse input)", y, ry);
  for (int k = 0; k < IN; k++)
    for (int o = 0; o < OUT; o++)
      for (int i = 0; i < B; i++) rdwt[(size_t)k * OUT + o] += x[i * IN + k] * dy[(size_t)i * OUT + o];
  std::vector<float> dwt(rdwt.size(), NAN), acc = dwt0, racc = dwt0;
  Workspace bws(linear_backward_workspace_size(B, IN, OUT, OUT, nt));
  linear_backward(nullptr, dwt.data(), nullptr, dy.data(), x.data(), wt.data(), OUT, B, IN, OUT,
                  bws.data, nt, false);
  expect_close("linear_backward dwt (sparse input)", dwt, rdwt);
  linear_backward(nullptr, acc.data(), nullptr, dy.data(), x.data(), wt.data(), OUT, B, IN, OUT,
                  bws.data, nt, true);
  for (size_t j = 0; j < racc.size(); j++) racc[j] += rdwt[j];
  expect_close("linear_backward dwt += (sparse input)", acc, racc);
}

// The fused Conv2d -> ReLU -> MaxPool2d kernels against the three kernels in turn: LeNet's two
// layers on 3 images, whose backward skips dy's zeros (the first: im2col by bands of rows, the
// weight gradient from windows of x), and an odd geometry with overlapping windows.
static void test_conv_relu_maxpool_fused() {
  const Conv2dShape shapes[] = {{3, 16, 12, 12, 32, 5, 5, 1, 1, 0, 0},
                                {3, 1, 28, 28, 16, 5, 5, 1, 1, 0, 0},
                                {2, 3, 9, 8, 4, 3, 2, 1, 2, 1, 0}};
  for (const Conv2dShape& s : shapes) {
    const Pool2dShape p{s.N, s.OC, s.OH(), s.OW(), 3, 2, 2, 1, 1, 0};
    const size_t conv_out = (size_t)s.N * s.OC * s.OH() * s.OW();
    const size_t pooled = (size_t)p.N * p.C * p.OH() * p.OW();
    auto x = randn((size_t)s.N * s.C * s.H * s.W), w = randn((size_t)s.OC * s.C * s.KH * s.KW);
    auto b = randn(s.OC), g = randn(pooled);
    Workspace ws(conv2d_workspace_size(s, get_num_threads()));
    std::vector<float> c(conv_out), r(conv_out), y(pooled), fy(pooled);
    std::vector<int32_t> am(pooled), fam(pooled);
    conv2d_forward(c.data(), x.data(), w.data(), b.data(), s, ws.data, get_num_threads());
    relu_forward(r.data(), c.data(), conv_out);
    maxpool2d_forward(y.data(), am.data(), r.data(), p);
    conv2d_relu_maxpool_forward(fy.data(), fam.data(), x.data(), w.data(), b.data(), s, p,
                                ws.data, get_num_threads());
    expect_close("conv2d_relu_maxpool_forward", fy, y, 0.0f);
    if (fam != am) { std::printf("FAIL conv2d_relu_maxpool_forward argmax\n"); failures++; }

    std::vector<float> mg(pooled), dy(conv_out), dx(x.size()), dw(w.size()), db(s.OC);
    relu_backward(mg.data(), g.data(), y.data(), pooled);
    maxpool2d_backward(dy.data(), mg.data(), am.data(), p);
    conv2d_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), s, ws.data,
                    get_num_threads(), false);
    std::vector<float> fdx(x.size()), fdw(w.size()), fdb(s.OC);
    conv2d_relu_maxpool_backward(fdx.data(), fdw.data(), fdb.data(), g.data(), y.data(), am.data(),
                                 p, x.data(), w.data(), s, ws.data, get_num_threads(), false);
    expect_close("conv2d_relu_maxpool_backward dx", fdx, dx);  // it skips dy's zeros
    expect_close("conv2d_relu_maxpool_backward dw", fdw, dw);
    expect_close("conv2d_relu_maxpool_backward db", fdb, db, 0.0f);
  }
}

static void test_pool_activation_loss_dropout_optim() {
  Pool2dShape s{2, 3, 7, 6, 3, 2, 2, 2, 1, 1};
  auto x = randn((size_t)s.N * s.C * s.H * s.W);
  const size_t out = (size_t)s.N * s.C * s.OH() * s.OW();
  std::vector<float> y(out), dx(x.size()), ay(out);
  std::vector<int32_t> am(out);
  maxpool2d_forward(y.data(), am.data(), x.data(), s);
  maxpool2d_backward(dx.data(), y.data(), am.data(), s);
  avgpool2d_forward(ay.data(), x.data(), s);
  avgpool2d_backward(dx.data(), ay.data(), s);
  for (size_t i = 0; i < out; i++)
    if (am[i] < 0 || am[i] >= s.H * s.W) { std::printf("FAIL maxpool argmax\n"); failures++; break; }

  const int N = 4, C = 5;
  auto z = randn(N * C), g = randn(N * C);
  std::vector<float> p(N * C), d(N * C);
  std::vector<int64_t> labels{0, 4, 2, 1};
  for (auto& v : z) v *= 1e4f;
  const double loss = cross_entropy_forward(p.data(), z.data(), labels.data(), N, C);
  cross_entropy_backward(d.data(), p.data(), labels.data(), N, C, 1.0f);
  if (!std::isfinite(loss)) { std::printf("FAIL cross_entropy not finite\n"); failures++; }
  softmax_forward(p.data(), z.data(), N, C);
  softmax_backward(d.data(), g.data(), p.data(), N, C);
  log_softmax_forward(p.data(), z.data(), N, C);
  log_softmax_backward(d.data(), g.data(), p.data(), N, C);
  sigmoid_forward(p.data(), z.data(), N * C);
  sigmoid_backward(d.data(), g.data(), p.data(), N * C);
  tanh_forward(p.data(), z.data(), N * C);
  relu_forward(p.data(), z.data(), N * C);
  leaky_relu_backward(d.data(), g.data(), z.data(), N * C, 0.1f);
  threshold_forward(p.data(), z.data(), N * C, 0.5f, -1.0f);
  mse_backward(d.data(), z.data(), g.data(), N * C, 1.0f);
  bce_with_logits_backward(d.data(), z.data(), g.data(), N * C, 1.0f);
  for (float v : d)
    if (!std::isfinite(v)) { std::printf("FAIL non-finite gradient\n"); failures++; break; }

  std::vector<uint8_t> mask(N * C);
  dropout_forward(p.data(), mask.data(), g.data(), N * C, 0.5f, 42);
  dropout_backward(d.data(), g.data(), mask.data(), N * C, 0.5f);
  auto param = randn(N * C), m = std::vector<float>(N * C, 0.0f), v = m, buf = m;
  sgd_update(param.data(), g.data(), buf.data(), N * C, 0.1f, 0.9f, 0.0f, 1e-4f, true, true);
  adam_update(param.data(), g.data(), m.data(), v.data(), N * C, 1e-3f, 0.9f, 0.999f, 1e-8f,
              0.0f, 1, false);
}

// gather_rows against a plain copy, on a batch big enough for the threads to share out.
static void test_gather_rows() {
  const int rows = 50, n = 120;
  const size_t width = 300;
  auto src = randn((size_t)rows * width);
  std::vector<int64_t> idx(n);
  for (int i = 0; i < n; i++) idx[i] = (int64_t)((i * 37 + 11) % rows);
  std::vector<float> out(n * width), want(n * width);
  for (int i = 0; i < n; i++)
    for (size_t j = 0; j < width; j++) want[i * width + j] = src[idx[i] * width + j];
  gather_rows(out.data(), src.data(), idx.data(), n, width);
  expect_close("gather_rows", out, want, 0.0f);
}

// The geometry rules (src/geometry.cpp): a shape the kernels run, and one breaking each rule.
static void test_geometry() {
  auto expect = [](const char* what, GeometryCheck c, GeometryCheck::Issue issue) {
    if (c.issue != issue) {
      std::printf("FAIL geometry %s: issue %d, expected %d\n", what, (int)c.issue, (int)issue);
      failures++;
    }
  };
  using G = GeometryCheck;
  expect("conv ok", check_conv2d({2, 3, 9, 8, 4, 3, 2, 2, 1, 1, 0}), G::ok);
  expect("conv stride", check_conv2d({1, 1, 4, 4, 1, 3, 3, 0, 1, 0, 0}), G::stride_below_1);
  expect("conv padding", check_conv2d({1, 1, 4, 4, 1, 3, 3, 1, 1, -1, 0}), G::padding_negative);
  expect("conv kernel", check_conv2d({1, 1, 4, 4, 1, 5, 5, 1, 1, 0, 0}), G::kernel_over_input);
  const G big = check_conv2d({1, 1, 1, 1, 1, 1, 1, 1, 1, 1 << 30, 0});
  expect("conv padded size", big, G::too_large);
  expect("conv workspace", check_conv2d({1, 512, 4096, 4096, 1, 3, 3, 1, 1, 1, 1}),
         G::workspace_too_large);
  expect("pool ok", check_pool2d({2, 3, 9, 8, 2, 2, 2, 2, 1, 1}), G::ok);
  expect("pool kernel", check_pool2d({1, 1, 4, 4, 0, 2, 1, 1, 0, 0}), G::kernel_below_1);
  expect("pool padding", check_pool2d({1, 1, 4, 4, 2, 2, 2, 2, 2, 0}),
         G::padding_outside_half_kernel);
  expect("pool size", check_pool2d({1 << 16, 1 << 16, 2, 2, 2, 2, 2, 2, 0, 0}), G::too_large);
}

// Built once per copy of the kernels (CMakeLists.txt: NNFAST_ISA names it), calling that copy's
// functions directly.
#define NNFAST_STRING(x) #x
#define NNFAST_NAME(x) NNFAST_STRING(x)
int main() {
  for (const KernelCopy& c : kernel_copies())
    if (std::string(c.name) == NNFAST_NAME(NNFAST_ISA) && !c.supported) {
      std::printf("kernel tests (%s): skipped, this CPU lacks its instructions\n", c.name);
      return 77;
    }
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    test_gemm();
    test_gemm_bf16();
    test_conv_and_linear();
    test_linear_sparse_inputs(37, 130, 300);
    test_linear_sparse_inputs(300, 130, 40);
    test_conv_relu_maxpool_fused();
    test_pool_activation_loss_dropout_optim();
    test_gather_rows();
  }
  test_geometry();
  std::printf(failures ? "kernel tests (%s): %d FAILED\n" : "kernel tests (%s): all passed\n",
              isa_name(), failures);
  return failures ? 1 : 0;
}
