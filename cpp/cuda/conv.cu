// 2-D convolution (cross-correlation, PyTorch's Conv2d), NCHW, image by image through the GEMM:
//   col (C*KH*KW, OH*OW) = im2col(x_n); y_n (OC, OH*OW) = w (OC, C*KH*KW) col + bias (per row).
// Backward, per image: dw += dy_n col^T; dcol = w^T dy_n and dx_n = col2im(dcol), a gather (one
// thread per input element adds the dcol entries that read it: no atomics); dbias = the sum of dy
// over images and positions, one block per channel. The workspace holds col and dcol.
#include "common.cuh"

namespace nnfast {
namespace cuda {

// col[r][p], r = (c KH + kh) KW + kw, p = oh OW + ow: x[c][oh SH - PH + kh][ow SW - PW + kw], or
// 0 in the padding.
__global__ void im2col_kernel(float* col, const float* x, Conv2dShape s, int OH, int OW) {
  const size_t P = (size_t)OH * OW, total = (size_t)s.C * s.KH * s.KW * P;
  NNFAST_GRID_LOOP(i, total) {
    const int p = (int)(i % P), r = (int)(i / P);
    const int kw = r % s.KW, kh = r / s.KW % s.KH, c = r / (s.KW * s.KH);
    const int h = p / OW * s.SH - s.PH + kh, w = p % OW * s.SW - s.PW + kw;
    col[i] = (h >= 0 && h < s.H && w >= 0 && w < s.W) ? x[((size_t)c * s.H + h) * s.W + w] : 0.0f;
  }
}

// dx[c][h][w] = sum over (kh, kw) of dcol[(c KH + kh) KW + kw][oh OW + ow] where
// oh SH - PH + kh = h and ow SW - PW + kw = w, in (kh, kw) order.
__global__ void col2im_kernel(float* dx, const float* dcol, Conv2dShape s, int OH, int OW) {
  const size_t P = (size_t)OH * OW, total = (size_t)s.C * s.H * s.W;
  NNFAST_GRID_LOOP(i, total) {
    const int w = (int)(i % s.W), h = (int)(i / s.W % s.H), c = (int)(i / ((size_t)s.W * s.H));
    float g = 0.0f;
    for (int kh = 0; kh < s.KH; kh++) {
      const int th = h + s.PH - kh;
      if (th < 0 || th % s.SH != 0 || th / s.SH >= OH) continue;
      for (int kw = 0; kw < s.KW; kw++) {
        const int tw = w + s.PW - kw;
        if (tw < 0 || tw % s.SW != 0 || tw / s.SW >= OW) continue;
        const size_t r = ((size_t)c * s.KH + kh) * s.KW + kw;
        g += dcol[r * P + (size_t)(th / s.SH) * OW + tw / s.SW];
      }
    }
    dx[i] = g;
  }
}

// db[oc] (+)= sum over n, p of dy[n][oc][p]: block oc, its threads' strided shares, then a tree.
__global__ void conv_bias_grad_kernel(float* db, const float* dy, int N, int OC, size_t P,
                                      bool acc) {
  const int oc = blockIdx.x;
  float s = 0.0f;
  for (size_t i = threadIdx.x; i < (size_t)N * P; i += blockDim.x)
    s += dy[(i / P * OC + oc) * P + i % P];
  s = block_reduce(s, SumOp());
  if (threadIdx.x == 0) db[oc] = acc ? db[oc] + s : s;
}

size_t conv2d_workspace_size(const Conv2dShape& s) {
  return 2 * (size_t)s.C * s.KH * s.KW * s.OH() * s.OW();
}

int conv2d_forward(float* y, const float* x, const float* w, const float* bias,
                   const Conv2dShape& s, float* workspace) {
  const int OH = s.OH(), OW = s.OW(), P = OH * OW, R = s.C * s.KH * s.KW;
  Epilogue e;
  e.row_bias = bias;
  for (int n = 0; n < s.N; n++) {
    im2col_kernel<<<blocks_for((size_t)R * P), kThreads>>>(
        workspace, x + (size_t)n * s.C * s.H * s.W, s, OH, OW);
    NNFAST_CUDA_TRY(last_error());
    NNFAST_CUDA_TRY(sgemm(false, false, s.OC, P, R, 1.0f, w, R, workspace, P, 0.0f,
                          y + (size_t)n * s.OC * P, P, e));
  }
  return 0;
}

int conv2d_backward(float* dx, float* dw, float* dbias, const float* dy, const float* x,
                    const float* w, const Conv2dShape& s, float* workspace, bool accumulate) {
  const int OH = s.OH(), OW = s.OW(), P = OH * OW, R = s.C * s.KH * s.KW;
  float* col = workspace;
  float* dcol = workspace + (size_t)R * P;
  for (int n = 0; n < s.N; n++) {
    const float* dyn = dy + (size_t)n * s.OC * P;
    if (dw) {  // dw (OC, R) (+)= dy_n (OC, P) col^T
      im2col_kernel<<<blocks_for((size_t)R * P), kThreads>>>(
          col, x + (size_t)n * s.C * s.H * s.W, s, OH, OW);
      NNFAST_CUDA_TRY(last_error());
      const float beta = (n > 0 || accumulate) ? 1.0f : 0.0f;
      NNFAST_CUDA_TRY(sgemm(false, true, s.OC, R, P, 1.0f, dyn, P, col, P, beta, dw, R));
    }
    if (dx) {  // dcol (R, P) = w^T dy_n, then dx_n = col2im(dcol)
      NNFAST_CUDA_TRY(sgemm(true, false, R, P, s.OC, 1.0f, w, R, dyn, P, 0.0f, dcol, P));
      col2im_kernel<<<blocks_for((size_t)s.C * s.H * s.W), kThreads>>>(
          dx + (size_t)n * s.C * s.H * s.W, dcol, s, OH, OW);
      NNFAST_CUDA_TRY(last_error());
    }
  }
  if (dbias && s.OC > 0) {
    conv_bias_grad_kernel<<<s.OC, kThreads>>>(dbias, dy, s.N, s.OC, (size_t)P, accumulate);
    NNFAST_CUDA_TRY(last_error());
  }
  return 0;
}

}  // namespace cuda
}  // namespace nnfast
