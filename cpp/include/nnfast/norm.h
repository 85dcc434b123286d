// Batch normalisation (PyTorch's BatchNorm1d / BatchNorm2d) over x (N, C, S): S = H * W for
// images, 1 for (N, C) rows; per channel c, the statistics of its N * S values.
#pragma once
#include "nnfast/common.h"

namespace nnfast {
inline namespace NNFAST_ISA {

// training: mean[c] and the biased variance var[c] of the batch, invstd[c] = 1 / sqrt(var + eps);
//   running_mean / running_var (when not null) move towards them by `momentum`:
//   rm = (1 - momentum) rm + momentum mean, rv = (1 - momentum) rv + momentum var NS / (NS - 1)
//   (the unbiased variance; NS = N * S >= 2).
// not training: mean = running_mean, invstd = 1 / sqrt(running_var + eps).
// y = (x - mean[c]) invstd[c] gamma[c] + beta[c]; gamma / beta null: 1 / 0.
// mean and invstd (C floats each) are written for batchnorm_backward.
void batchnorm_forward(float* y, float* mean, float* invstd, const float* x, const float* gamma,
                       const float* beta, float* running_mean, float* running_var, int N, int C,
                       int S, bool training, float momentum, float eps);

// xhat = (x - mean) invstd; dgamma[c] = sum dy xhat, dbeta[c] = sum dy (added when accumulate,
// null to skip); dx (null to skip) = gamma invstd (dy - mean_c(dy) - xhat mean_c(dy xhat)) for
// batch statistics (training), gamma invstd dy for running ones.
void batchnorm_backward(float* dx, float* dgamma, float* dbeta, const float* dy, const float* x,
                        const float* gamma, const float* mean, const float* invstd, int N, int C,
                        int S, bool training, bool accumulate);

}  // namespace NNFAST_ISA
}  // namespace nnfast
