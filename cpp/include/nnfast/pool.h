// 2-D max and average pooling, NCHW.
#pragma once
#include "nnfast/common.h"

namespace nnfast {

// Geometry of a pooling window. Output size: OH = (H + 2*PH - KH) / SH + 1, likewise OW.
// Padding (PH <= KH/2, PW <= KW/2) is -inf for max pooling and zeros counted in the average
// for avg pooling (PyTorch's count_include_pad=True).
struct Pool2dShape {
  int N, C, H, W;
  int KH, KW, SH, SW, PH, PW;
  int OH() const { return (H + 2 * PH - KH) / SH + 1; }
  int OW() const { return (W + 2 * PW - KW) / SW + 1; }
};

// Whether the pooling kernels can run on s (N, C, H, W >= 1 given): window and stride >= 1,
// padding within [0, window / 2], the window no larger than the padded input, and N*C*H*W
// below 2^31 (so that argmax indices and the kernels' int sizes cannot overflow).
GeometryCheck check_pool2d(const Pool2dShape& s);

inline namespace NNFAST_ISA {

// y (N,C,OH,OW) = max over each window; argmax (N,C,OH,OW) = h*W + w of the chosen input
// element within its (n,c) plane (first maximum in row-major window order; where the window
// holds NaNs, the last NaN, as PyTorch).
void maxpool2d_forward(float* y, int32_t* argmax, const float* x, const Pool2dShape& s);
// The same for one plane xp (H,W) into yp / ap (OH,OW), on the calling thread (s.N, s.C unused).
void maxpool2d_plane(float* yp, int32_t* ap, const float* xp, const Pool2dShape& s);
// dx (N,C,H,W) overwritten: each dy routed to its argmax (summed where windows overlap).
void maxpool2d_backward(float* dx, const float* dy, const int32_t* argmax, const Pool2dShape& s);
// The same for one plane, on the calling thread.
void maxpool2d_plane_backward(float* dxp, const float* dyp, const int32_t* ap, const Pool2dShape& s);

// True when every one of the n entries of argmax lies in [0, plane).
bool argmax_in_range(const int32_t* argmax, size_t n, int32_t plane);

// y = mean over each window (divisor KH*KW).
void avgpool2d_forward(float* y, const float* x, const Pool2dShape& s);
// dx overwritten: each dy spread evenly over its window.
void avgpool2d_backward(float* dx, const float* dy, const Pool2dShape& s);

}  // namespace NNFAST_ISA
}  // namespace nnfast
