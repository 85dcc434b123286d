// 2-D convolution (cross-correlation, PyTorch's Conv2d), NCHW, through the GEMM, B images at a
// time (B = conv_chunk: as many as keep one im2col matrix within kChunkFloats):
//   col (C*KH*KW, B*OH*OW) = im2col(x_n0 .. x_n0+B-1); rows (OC, B*P) = w (OC, C*KH*KW) col + bias
//   (per row), then y_n (OC, P) = rows[:, b P : (b + 1) P] (a reorder; none when B is 1).
// Backward, per chunk: dy reordered to rows (OC, B*P); dw += rows col^T; dcol = w^T rows and
// dx = col2im(dcol), a gather (one thread per input element adds the dcol entries that read it:
// no atomics); dbias = the sum of dy over images and positions, one block per channel. The
// workspace holds col, dcol and rows. Launches per call: 3 (forward) and 6 (backward) per chunk.
#include "common.cuh"

namespace nnfast {
namespace cuda {

constexpr size_t kChunkFloats = (size_t)1 << 24;   // one im2col matrix: 64 MB at most

// Images per chunk: at least 1, at most N.
static int conv_chunk(const Conv2dShape& s) {
  const size_t per_image = (size_t)s.C * s.KH * s.KW * s.OH() * s.OW();
  size_t fit = per_image ? kChunkFloats / per_image : 1;
  if (fit > (size_t)s.N) fit = (size_t)s.N;
  return fit < 1 ? 1 : (int)fit;
}

// col[r][b P + p], r = (c KH + kh) KW + kw, p = oh OW + ow: x_b[c][oh SH - PH + kh][ow SW - PW +
// kw] of the chunk's image b, or 0 in the padding.
__global__ void im2col_kernel(float* col, const float* x, Conv2dShape s, int OH, int OW, int B) {
  const size_t P = (size_t)OH * OW, BP = (size_t)B * P, total = (size_t)s.C * s.KH * s.KW * BP;
  NNFAST_GRID_LOOP(i, total) {
    const size_t q = i % BP, r = i / BP, b = q / P;
    const int p = (int)(q % P);
    const int kw = (int)(r % s.KW), kh = (int)(r / s.KW % s.KH), c = (int)(r / (s.KW * s.KH));
    const int h = p / OW * s.SH - s.PH + kh, w = p % OW * s.SW - s.PW + kw;
    col[i] = (h >= 0 && h < s.H && w >= 0 && w < s.W)
                 ? x[((b * s.C + c) * s.H + h) * s.W + w] : 0.0f;
  }
}

// dx_b[c][h][w] = sum over (kh, kw) of dcol[(c KH + kh) KW + kw][b P + oh OW + ow] where
// oh SH - PH + kh = h and ow SW - PW + kw = w, in (kh, kw) order.
__global__ void col2im_kernel(float* dx, const float* dcol, Conv2dShape s, int OH, int OW, int B) {
  const size_t P = (size_t)OH * OW, BP = (size_t)B * P, image = (size_t)s.C * s.H * s.W;
  NNFAST_GRID_LOOP(i, (size_t)B * image) {
    const size_t b = i / image, j = i % image;
    const int w = (int)(j % s.W), h = (int)(j / s.W % s.H), c = (int)(j / ((size_t)s.W * s.H));
    float g = 0.0f;
    for (int kh = 0; kh < s.KH; kh++) {
      const int th = h + s.PH - kh;
      if (th < 0 || th % s.SH != 0 || th / s.SH >= OH) continue;
      for (int kw = 0; kw < s.KW; kw++) {
        const int tw = w + s.PW - kw;
        if (tw < 0 || tw % s.SW != 0 || tw / s.SW >= OW) continue;
        const size_t r = ((size_t)c * s.KH + kh) * s.KW + kw;
        g += dcol[r * BP + b * P + (size_t)(th / s.SH) * OW + tw / s.SW];
      }
    }
    dx[i] = g;
  }
}

// Between NCHW images (B, OC, P) and rows (OC, B*P): dst images from src rows when to_images,
// else dst rows from src images.
__global__ void reorder_kernel(float* dst, const float* src, int OC, size_t P, int B,
                               bool to_images) {
  NNFAST_GRID_LOOP(i, (size_t)B * OC * P) {
    const size_t p = i % P, oc = i / P % OC, b = i / (P * OC);
    const size_t r = oc * ((size_t)B * P) + b * P + p;
    if (to_images) dst[i] = src[r];
    else dst[r] = src[i];
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
  const size_t B = (size_t)conv_chunk(s), P = (size_t)s.OH() * s.OW();
  return B * P * (2 * (size_t)s.C * s.KH * s.KW + s.OC);
}

int conv2d_forward(float* y, const float* x, const float* w, const float* bias,
                   const Conv2dShape& s, float* workspace) {
  const int OH = s.OH(), OW = s.OW(), P = OH * OW, R = s.C * s.KH * s.KW, B = conv_chunk(s);
  float* col = workspace;
  float* rows = workspace + 2 * (size_t)R * P * B;
  Epilogue e;
  e.row_bias = bias;
  for (int n0 = 0; n0 < s.N; n0 += B) {
    const int b = s.N - n0 < B ? s.N - n0 : B;
    const size_t bp = (size_t)b * P;
    float* yn = y + (size_t)n0 * s.OC * P;
    im2col_kernel<<<blocks_for((size_t)R * bp), kThreads, 0, stream()>>>(
        col, x + (size_t)n0 * s.C * s.H * s.W, s, OH, OW, b);
    NNFAST_CUDA_TRY(last_error());
    NNFAST_CUDA_TRY(sgemm(false, false, s.OC, (int)bp, R, 1.0f, w, R, col, (int)bp, 0.0f,
                          b == 1 ? yn : rows, (int)bp, e));
    if (b > 1) {
      reorder_kernel<<<blocks_for((size_t)s.OC * bp), kThreads, 0, stream()>>>(
          yn, rows, s.OC, P, b, true);
      NNFAST_CUDA_TRY(last_error());
    }
  }
  return 0;
}

int conv2d_backward(float* dx, float* dw, float* dbias, const float* dy, const float* x,
                    const float* w, const Conv2dShape& s, float* workspace, bool accumulate) {
  const int OH = s.OH(), OW = s.OW(), P = OH * OW, R = s.C * s.KH * s.KW, B = conv_chunk(s);
  float* col = workspace;
  float* dcol = workspace + (size_t)R * P * B;
  float* rows = dcol + (size_t)R * P * B;
  for (int n0 = 0; n0 < s.N; n0 += B) {
    const int b = s.N - n0 < B ? s.N - n0 : B;
    const size_t bp = (size_t)b * P;
    const float* dyr = dy + (size_t)n0 * s.OC * P;   // (OC, b P) rows: as it is when b is 1
    if (b > 1) {
      reorder_kernel<<<blocks_for((size_t)s.OC * bp), kThreads, 0, stream()>>>(
          rows, dyr, s.OC, P, b, false);
      NNFAST_CUDA_TRY(last_error());
      dyr = rows;
    }
    if (dw) {  // dw (OC, R) (+)= dy rows (OC, b P) col^T
      im2col_kernel<<<blocks_for((size_t)R * bp), kThreads, 0, stream()>>>(
          col, x + (size_t)n0 * s.C * s.H * s.W, s, OH, OW, b);
      NNFAST_CUDA_TRY(last_error());
      const float beta = (n0 > 0 || accumulate) ? 1.0f : 0.0f;
      NNFAST_CUDA_TRY(sgemm(false, true, s.OC, R, (int)bp, 1.0f, dyr, (int)bp, col, (int)bp, beta,
                            dw, R));
    }
    if (dx) {  // dcol (R, b P) = w^T dy rows, then dx = col2im(dcol)
      NNFAST_CUDA_TRY(sgemm(true, false, R, (int)bp, s.OC, 1.0f, w, R, dyr, (int)bp, 0.0f, dcol,
                            (int)bp));
      col2im_kernel<<<blocks_for((size_t)b * s.C * s.H * s.W), kThreads, 0, stream()>>>(
          dx + (size_t)n0 * s.C * s.H * s.W, dcol, s, OH, OW, b);
      NNFAST_CUDA_TRY(last_error());
    }
  }
  if (dbias && s.OC > 0) {
    conv_bias_grad_kernel<<<s.OC, kThreads, 0, stream()>>>(
        dbias, dy, s.N, s.OC, (size_t)P, accumulate);
    NNFAST_CUDA_TRY(last_error());
  }
  return 0;
}

size_t conv2d_relu_maxpool_workspace_size(const Conv2dShape& s) {
  return conv2d_workspace_size(s) + (size_t)s.N * s.OC * s.OH() * s.OW();
}

// The convolution into the workspace's tail, then maxpool(relu(.)) in one pass.
int conv2d_relu_maxpool_forward(float* y, int32_t* argmax, const float* x, const float* w,
                                const float* bias, const Conv2dShape& s, const Pool2dShape& pool,
                                float* workspace) {
  float* conv = workspace + conv2d_workspace_size(s);
  NNFAST_CUDA_TRY(conv2d_forward(conv, x, w, bias, s, workspace));
  return relu_maxpool2d_forward(y, argmax, conv, pool);
}

// dconv (the workspace's tail) from g through the pool and the ReLU in one pass, then the
// convolution's backward.
int conv2d_relu_maxpool_backward(float* dx, float* dw, float* dbias, const float* g,
                                 const float* y, const int32_t* argmax, const float* x,
                                 const float* w, const Conv2dShape& s, const Pool2dShape& pool,
                                 float* workspace, bool accumulate) {
  float* dconv = workspace + conv2d_workspace_size(s);
  NNFAST_CUDA_TRY(relu_maxpool2d_backward(dconv, g, y, argmax, pool));
  return conv2d_backward(dx, dw, dbias, dconv, x, w, s, workspace, accumulate);
}

}  // namespace cuda
}  // namespace nnfast
