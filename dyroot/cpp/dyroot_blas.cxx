/// \file dyroot_blas.cxx
/// \brief BLAS for SOFIE's Gemm, protected from interposition (torch's MKL exports sgemm_).
///
/// If `import torch` ran before libdyroot is loaded, an undefined `sgemm_` in the model
/// library would bind to libtorch_cpu's MKL, which starts OpenMP threads inside every
/// RDataFrame slot (stack-notes: 1.0 -> 0.55 M events/s on 2 threads). So the library
/// never leaves `sgemm_` undefined:
///   - scipy-openblas32 (pip): the model is compiled with -Dsgemm_=scipy_sgemm_ (a name
///     torch does not export); `sgemm_`/`sgemv_` are defined here too, hidden, for any
///     other caller; OpenBLAS runs on one thread (one session per RDataFrame slot);
///   - a system BLAS: the model calls dyroot_blas_sgemm_ (hidden, here), which takes
///     sgemm_ from the BLAS library's own handle (dlopen + dlsym), never from the global scope.
///
/// \author dyroot
/// \date 2026-12

#include <dlfcn.h>

#include <stdexcept>
#include <string>

#define DYROOT_HIDDEN __attribute__((visibility("hidden")))

using SgemmFn = void (*)(const char *, const char *, const int *, const int *, const int *, const float *,
                         const float *, const int *, const float *, const int *, const float *, float *, const int *);
using SgemvFn = void (*)(const char *, const int *, const int *, const float *, const float *, const int *,
                         const float *, const int *, const float *, float *, const int *);

#if defined(DYROOT_BLAS_SCIPY)

#undef sgemm_
#undef sgemv_

extern "C" {
void scipy_sgemm_(const char *, const char *, const int *, const int *, const int *, const float *, const float *,
                  const int *, const float *, const int *, const float *, float *, const int *);
void scipy_sgemv_(const char *, const int *, const int *, const float *, const float *, const int *, const float *,
                  const int *, const float *, float *, const int *);
void scipy_openblas_set_num_threads(int);

DYROOT_HIDDEN void sgemm_(const char *ta, const char *tb, const int *m, const int *n, const int *k, const float *alpha,
                          const float *A, const int *lda, const float *B, const int *ldb, const float *beta, float *C,
                          const int *ldc)
{
   scipy_sgemm_(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

DYROOT_HIDDEN void sgemv_(const char *t, const int *m, const int *n, const float *alpha, const float *A,
                          const int *lda, const float *x, const int *incx, const float *beta, float *y,
                          const int *incy)
{
   scipy_sgemv_(t, m, n, alpha, A, lda, x, incx, beta, y, incy);
}
}

namespace {
/// One BLAS thread: RDataFrame runs one session per slot (ImplicitMT gives the parallelism).
struct OneBlasThread {
   OneBlasThread() { scipy_openblas_set_num_threads(1); }
} gOneBlasThread;
} // namespace

#elif defined(DYROOT_BLAS_SYSTEM)

#undef sgemm_
#undef sgemv_

namespace {
void *BlasSymbol(const char *name)
{
   static void *handle = dlopen(DYROOT_SYSTEM_BLAS_LIBRARY, RTLD_NOW | RTLD_LOCAL);
   if (!handle)
      throw std::runtime_error(std::string("dyroot: cannot open the BLAS ") + DYROOT_SYSTEM_BLAS_LIBRARY + ": " +
                               dlerror() + "; rebuild with `dyroot build --force`");
   void *f = dlsym(handle, name);
   if (!f)
      throw std::runtime_error(std::string("dyroot: the BLAS ") + DYROOT_SYSTEM_BLAS_LIBRARY + " has no " + name);
   return f;
}
} // namespace

extern "C" {
DYROOT_HIDDEN void dyroot_blas_sgemm_(const char *ta, const char *tb, const int *m, const int *n, const int *k,
                                      const float *alpha, const float *A, const int *lda, const float *B,
                                      const int *ldb, const float *beta, float *C, const int *ldc)
{
   static const auto f = reinterpret_cast<SgemmFn>(BlasSymbol("sgemm_"));
   f(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

DYROOT_HIDDEN void dyroot_blas_sgemv_(const char *t, const int *m, const int *n, const float *alpha, const float *A,
                                      const int *lda, const float *x, const int *incx, const float *beta, float *y,
                                      const int *incy)
{
   static const auto f = reinterpret_cast<SgemvFn>(BlasSymbol("sgemv_"));
   f(t, m, n, alpha, A, lda, x, incx, beta, y, incy);
}
}

#else
#error "dyroot_blas.cxx: define DYROOT_BLAS_SCIPY or DYROOT_BLAS_SYSTEM (the CMake project does)"
#endif
