// Conv2d as im2col + GEMM over the whole batch (see conv.h).
//
// Workspace (conv2d_workspace_size floats) holds two matrices:
//   col  (CKK, N*P)  column matrix, CKK = C*KH*KW, P = OH*OW: col[(c*KH+kh)*KW+kw, n*P + oh*OW+ow]
//                    = x[n, c, oh*SH-PH+kh, ow*SW-PW+kw] (0 outside the image)
//   ymat (OC, N*P)   outputs / output gradients with channels outermost
// Forward:  ymat = W (OC, CKK) @ col, then y[n, oc, p] = ymat[oc, n*P+p] + bias[oc].
// Backward: ymat = dy rearranged; dW += ymat @ col^T (one GEMM whose K runs over the batch in a
//           fixed order, so the sum never depends on the thread count); dbias += row sums of
//           ymat; col = W^T @ ymat (reusing the buffer), then col2im scatters it into dx.
#include "nnfast/conv.h"

#include <algorithm>
#include <cstring>

#include "nnfast/gemm.h"

namespace nnfast {

size_t conv2d_workspace_size(const Conv2dShape& s, int /*num_threads*/) {
  const size_t NP = (size_t)s.N * s.OH() * s.OW();
  return ((size_t)s.C * s.KH * s.KW + (size_t)s.OC) * NP;
}

// im2col of image n into columns [n*P, (n+1)*P) of col (row stride ld).
static void im2col(float* col, size_t ld, const float* xn, const Conv2dShape& s) {
  const int OH = s.OH(), OW = s.OW();
  for (int c = 0; c < s.C; c++)
    for (int kh = 0; kh < s.KH; kh++)
      for (int kw = 0; kw < s.KW; kw++) {
        float* dst = col + (size_t)((c * s.KH + kh) * s.KW + kw) * ld;
        const float* xc = xn + (size_t)c * s.H * s.W;
        for (int oh = 0; oh < OH; oh++) {
          const int ih = oh * s.SH - s.PH + kh;
          float* d = dst + (size_t)oh * OW;
          if (ih < 0 || ih >= s.H) {
            std::fill(d, d + OW, 0.0f);
            continue;
          }
          const float* xr = xc + (size_t)ih * s.W;
          for (int ow = 0; ow < OW; ow++) {
            const int iw = ow * s.SW - s.PW + kw;
            d[ow] = (iw >= 0 && iw < s.W) ? xr[iw] : 0.0f;
          }
        }
      }
}

// The column matrix of the whole batch: image n fills columns [n*P, (n+1)*P).
static void im2col_batch(float* col, const float* x, const Conv2dShape& s, int nt) {
  const size_t P = (size_t)s.OH() * s.OW(), NP = (size_t)s.N * P;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int n = 0; n < s.N; n++) im2col(col + (size_t)n * P, NP, x + (size_t)n * s.C * s.H * s.W, s);
}

// col2im: dxn (C,H,W) = 0, then every column entry added back to the pixel it was copied from.
static void col2im(float* dxn, const float* col, size_t ld, const Conv2dShape& s) {
  const int OH = s.OH(), OW = s.OW();
  std::fill(dxn, dxn + (size_t)s.C * s.H * s.W, 0.0f);
  for (int c = 0; c < s.C; c++)
    for (int kh = 0; kh < s.KH; kh++)
      for (int kw = 0; kw < s.KW; kw++) {
        const float* src = col + (size_t)((c * s.KH + kh) * s.KW + kw) * ld;
        float* dc = dxn + (size_t)c * s.H * s.W;
        for (int oh = 0; oh < OH; oh++) {
          const int ih = oh * s.SH - s.PH + kh;
          if (ih < 0 || ih >= s.H) continue;
          float* dr = dc + (size_t)ih * s.W;
          const float* sr = src + (size_t)oh * OW;
          for (int ow = 0; ow < OW; ow++) {
            const int iw = ow * s.SW - s.PW + kw;
            if (iw >= 0 && iw < s.W) dr[iw] += sr[ow];
          }
        }
      }
}

// y (N,OC,OH,OW) = conv(x, w) + bias
void conv2d_forward(float* y, const float* x, const float* w, const float* bias,
                    const Conv2dShape& s, float* workspace) {
  const int P = s.OH() * s.OW(), CKK = s.C * s.KH * s.KW;
  const size_t NP = (size_t)s.N * P;
  float* col = workspace;
  float* ymat = workspace + (size_t)CKK * NP;
  const int nt = get_num_threads();
  im2col_batch(col, x, s, nt);
  sgemm(false, false, s.OC, (int)NP, CKK, 1.0f, w, CKK, col, (int)NP, 0.0f, ymat, (int)NP);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int n = 0; n < s.N; n++)
    for (int oc = 0; oc < s.OC; oc++) {
      const float b = bias ? bias[oc] : 0.0f;
      const float* src = ymat + (size_t)oc * NP + (size_t)n * P;
      float* dst = y + ((size_t)n * s.OC + oc) * P;
      for (int p = 0; p < P; p++) dst[p] = src[p] + b;
    }
}

// dx = conv-transpose(dy, w); dw += dy (*) x; dbias += sum dy
void conv2d_backward(float* dx, float* dw, float* dbias, const float* dy, const float* x,
                     const float* w, const Conv2dShape& s, float* workspace) {
  const int P = s.OH() * s.OW(), CKK = s.C * s.KH * s.KW;
  const size_t NP = (size_t)s.N * P;
  float* col = workspace;
  float* ymat = workspace + (size_t)CKK * NP;
  const int nt = get_num_threads();
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int n = 0; n < s.N; n++)
    for (int oc = 0; oc < s.OC; oc++)
      std::memcpy(ymat + (size_t)oc * NP + (size_t)n * P, dy + ((size_t)n * s.OC + oc) * P,
                  P * sizeof(float));
  if (dbias) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int oc = 0; oc < s.OC; oc++) {
      const float* r = ymat + (size_t)oc * NP;
      float sum = 0.0f;
      for (size_t i = 0; i < NP; i++) sum += r[i];
      dbias[oc] += sum;
    }
  }
  if (dw) {
    im2col_batch(col, x, s, nt);
    sgemm(false, true, s.OC, CKK, (int)NP, 1.0f, ymat, (int)NP, col, (int)NP, 1.0f, dw, CKK);
  }
  if (dx) {
    sgemm(true, false, CKK, (int)NP, s.OC, 1.0f, w, CKK, ymat, (int)NP, 0.0f, col, (int)NP);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int n = 0; n < s.N; n++)
      col2im(dx + (size_t)n * s.C * s.H * s.W, col + (size_t)n * P, NP, s);
  }
}

}  // namespace nnfast
