/// \file dyroot_engine.hxx
/// \brief Internal interfaces of libdyroot: the model session, the bundle description and the event batch.
///
/// Not for users (see dyroot_api.hxx). Two translation units meet here:
/// `dyroot_model.cxx` (the SOFIE code of one bundle, built from the generated
/// `dyroot_bundle_config.hxx`) provides ModelInfo and MakeSession; `dyroot_engine.cxx`
/// (the random streams, kinematics, RDataFrame sources and templates, the same for every
/// bundle) uses them. Everything here has hidden visibility.
///
/// \author dyroot
/// \date 2026-12

#ifndef DYROOT_ENGINE_HXX
#define DYROOT_ENGINE_HXX

#include "dyroot_kinematics.hxx"
#include "dyroot_random.hxx"

#include <RtypesCore.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace dyroot {
namespace impl {

/// One inference session (SOFIE's Session): not thread-safe, one per RDataFrame slot.
class ISession {
public:
   virtual ~ISession() = default;
   /// Run the flow on one batch: noise [B x dim], context [B x contextDim] (nullptr if
   /// unconditional) -> physical features x [B x dim].
   virtual void Infer(const float *noise, const float *context, float *x) = 0;
};

/// One BLAS sgemm call of the model, as SOFIE's Gemm_Call makes it (column-major:
/// C[m x n] += op(A)[m x k] op(B)[k x n]); 2 m n k flops per call.
struct GemmShape {
   bool transA, transB;
   int m, n, k;
};

/// What the bundle's translation unit knows about the model (from bundle.json and the ONNX).
struct ModelInfo {
   std::string hash;             ///< bundle hash
   unsigned batch = 0;           ///< SOFIE batch size
   int dim = 5;                  ///< flow dimension (noise and output)
   int contextDim = 0;           ///< 0: unconditional
   std::vector<double> contextEdges;  ///< cumulative category fractions (size contextDim), last = +inf
   double sigmaPb = 0.0;         ///< cross-section of the full flow output, pb
   Selection selection;
   CategoryScheme categories;
   std::string selectionJson;    ///< the bundle's Selection as JSON (for provenance)
   std::string categoriesJson;   ///< the bundle's CategoryScheme as JSON
   std::string contextJson;      ///< the bundle's context spec as JSON (null: unconditional)
   std::string buildJson;        ///< build record: versions, flags, BLAS, ONNX Gemm shapes...
   std::vector<GemmShape> gemms; ///< Gemm shapes of the model (for the benchmark)
};

const ModelInfo &GetModelInfo();
std::unique_ptr<ISession> MakeSession();
/// The BLAS sgemm the model calls (for the Gemm benchmark).
void ModelSgemm(const char *ta, const char *tb, const int *m, const int *n, const int *k, const float *alpha,
                const float *A, const int *lda, const float *B, const int *ldb, const float *beta, float *C,
                const int *ldc);

/// The columns of a generated event, in this order (see dyroot_engine.cxx for the types).
enum EColumn : int {
   kColEvent, kColMu1Pt, kColMu1Eta, kColMu1Phi, kColMu1Charge, kColMu2Pt, kColMu2Eta, kColMu2Phi, kColMu2Charge,
   kColMll, kColPtll, kColYll, kColCostheta, kColPhiCs, kColPhill, kColCategory, kColPass, kColWeight,
   kColContextCategory, kNColumns
};

/// All columns of one batch of events, structure of arrays.
struct EventBatch {
   std::vector<ULong64_t> event;          ///< global event index
   std::vector<double> var[kNVars];       ///< EVar columns (charges also as +-1.0; max_abs_eta)
   std::vector<int> charge1, charge2;     ///< mu1_charge, mu2_charge
   std::vector<int> category;             ///< -1: no category
   std::unique_ptr<bool[]> pass;          ///< passes the analysis selection
   std::vector<int> contextCategory;      ///< conditional models: the category drawn for the context
   std::vector<float> noise, context, x;  ///< flow input and output
   std::vector<double> uContext;
   random::NoiseBatch rng;
   std::size_t size = 0;
   void Resize(std::size_t n, int dim, int contextDim);
};

/// Fill `b` with the events of the whole batch that starts at global index `start`.
void GenerateBatch(ISession &session, EventBatch &b, std::uint64_t seed, std::uint64_t start);

} // namespace impl
} // namespace dyroot

#endif // DYROOT_ENGINE_HXX
