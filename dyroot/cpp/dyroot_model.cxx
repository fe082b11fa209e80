/// \file dyroot_model.cxx
/// \brief The bundle-specific part of libdyroot: SOFIE's session of the flow and the bundle's constants.
///
/// Everything that depends on the bundle comes from `dyroot_bundle_config.hxx`, which
/// `dyroot build` generates from bundle.json and the SOFIE header of sampler_sofie.onnx:
/// it includes the SOFIE code and defines, in namespace dyroot_bundle, `Session`,
/// `NewSession(dir)`, `Infer(session, noise, context, x)`, `Sgemm(...)` and `MakeInfo()`.
///
/// \author dyroot
/// \date 2026-12

#include "dyroot_engine.hxx"

#include "dyroot_bundle_config.hxx"

#include <dlfcn.h>

#include <stdexcept>

namespace dyroot {
namespace impl {
namespace {

/// Directory of this library: the weights file lies beside it.
std::string LibraryDir()
{
   Dl_info info;
   if (dladdr(reinterpret_cast<void *>(&LibraryDir), &info) == 0 || !info.dli_fname)
      throw std::runtime_error("dyroot: cannot locate libdyroot (dladdr failed)");
   std::string path = info.dli_fname;
   const auto slash = path.rfind('/');
   return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

class SofieSession final : public ISession {
   std::unique_ptr<dyroot_bundle::Session> fSession;

public:
   SofieSession() : fSession(dyroot_bundle::NewSession(LibraryDir())) {}
   void Infer(const float *noise, const float *context, float *x) override
   {
      dyroot_bundle::Infer(*fSession, noise, context, x);
   }
};

} // namespace

const ModelInfo &GetModelInfo()
{
   static const ModelInfo info = dyroot_bundle::MakeInfo();
   return info;
}

std::unique_ptr<ISession> MakeSession()
{
   return std::make_unique<SofieSession>();
}

void ModelSgemm(const char *ta, const char *tb, const int *m, const int *n, const int *k, const float *alpha,
                const float *A, const int *lda, const float *B, const int *ldb, const float *beta, float *C,
                const int *ldc)
{
   dyroot_bundle::Sgemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

} // namespace impl
} // namespace dyroot
