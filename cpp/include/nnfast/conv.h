// 2-D convolution (cross-correlation, as PyTorch's Conv2d), NCHW.
#pragma once
#include "nnfast/common.h"
#include "nnfast/pool.h"

namespace nnfast {

// Geometry of one conv2d call. Output size: OH = (H + 2*PH - KH) / SH + 1, likewise OW.
struct Conv2dShape {
  int N, C, H, W;    // input
  int OC, KH, KW;    // weight (OC, C, KH, KW)
  int SH, SW;        // stride
  int PH, PW;        // zero padding on each side
  int OH() const { return (H + 2 * PH - KH) / SH + 1; }
  int OW() const { return (W + 2 * PW - KW) / SW + 1; }
};

// Whether the conv2d kernels can run on s (every dimension >= 1 given): stride >= 1, padding
// >= 0, the kernel no larger than the padded input, the padded input, C*KH*KW, OH*OW and
// N*OH*OW below 2^31, and the workspace per thread (conv2d_workspace_size) at most 2^31 floats.
GeometryCheck check_conv2d(const Conv2dShape& s);

// Floats of scratch space conv2d_forward / conv2d_backward need when they run on num_threads
// threads (an im2col buffer per thread, and partial weight gradients of fixed batch chunks).
inline namespace NNFAST_ISA {

size_t conv2d_workspace_size(const Conv2dShape& s, int num_threads);

// The kernels use at most num_threads threads (pass nnfast::get_num_threads(), read once, to both
// conv2d_workspace_size and the kernel: the workspace holds one slice per thread; 64-byte
// aligned). Results do not depend on num_threads.

// y (N,OC,OH,OW) = conv(x (N,C,H,W), w (OC,C,KH,KW)) + bias (OC); bias may be null.
void conv2d_forward(float* y, const float* x, const float* w, const float* bias,
                    const Conv2dShape& s, float* workspace, int num_threads);

// Conv2d, ReLU and MaxPool2d in one pass, image by image while the convolution's output is in
// cache: y (N,OC,PH,PW) and argmax = maxpool2d_forward of relu_forward of conv2d_forward, number
// for number, with pool (N = s.N, C = s.OC, H = s.OH(), W = s.OW()) the pooling geometry. The
// full-size convolution output is never written to memory. Same workspace as conv2d_forward.
void conv2d_relu_maxpool_forward(float* y, int32_t* argmax, const float* x, const float* w,
                                 const float* bias, const Conv2dShape& s, const Pool2dShape& pool,
                                 float* workspace, int num_threads);

// The gradient path of conv2d_relu_maxpool_forward: conv2d_backward with dy = maxpool2d_backward of
// relu_backward(g, y) (g and y the pooled gradient and output (N,OC,PH,PW), argmax as the forward
// made it, every entry inside its plane), without the full-size dy in memory. Where a pooling
// window covers two or more outputs, dy is mostly zeros and the products skip them (the same
// sums within rounding; dbias exactly); with inf or NaN in x or w they do not (0 * inf = NaN).
void conv2d_relu_maxpool_backward(float* dx, float* dw, float* dbias, const float* g,
                                  const float* y, const int32_t* argmax, const Pool2dShape& pool,
                                  const float* x, const float* w, const Conv2dShape& s,
                                  float* workspace, int num_threads, bool accumulate = true);

// From dy (N,OC,OH,OW): dx (N,C,H,W) overwritten; dw (OC,C,KH,KW) += ; dbias (OC) += (or both
// overwritten when accumulate is false). Any of dx, dw, dbias may be null.
void conv2d_backward(float* dx, float* dw, float* dbias, const float* dy, const float* x,
                     const float* w, const Conv2dShape& s, float* workspace, int num_threads,
                     bool accumulate = true);

}  // namespace NNFAST_ISA
}  // namespace nnfast
