/// \file dyroot_api.hxx
/// \brief The public C++ interface of a built dyroot bundle (`libdyroot.so`), for macros and PyROOT.
///
/// `dyroot build BUNDLE` compiles one library per model bundle: the SOFIE code of the
/// flow, the random streams, the muon kinematics, the selection and the categories,
/// and two RDataFrame sources of generated events. This header declares what a macro
/// (or PyROOT, through cling) needs to use it:
///
/// ~~~{.cpp}
/// #include "dyroot_api.hxx"
/// ROOT::EnableImplicitMT();
/// auto df = dyroot::GeneratedEvents("model/", 10000000, 1);  // 1e7 events, seed 1 (after `dyroot build model/`)
/// auto h = df.Filter("pass_selection && category == 0").Histo1D({"h", "", 100, 110., 160.}, "mll");
/// auto &gen = dyroot::Open("model/");            // the bundle's Generator: FillTemplates, Info, ...
/// ~~~
///
/// Several bundles can be open in one process: every library keeps its symbols
/// hidden and is reached only through the `dyroot_generator` entry point of its
/// own handle (dlsym), so two models never interpose each other.
///
/// \author dyroot
/// \date 2026-12

#ifndef DYROOT_API_HXX
#define DYROOT_API_HXX

#include <ROOT/RDataFrame.hxx>
#include <TH1D.h>
#include <TSystem.h>

#include <dlfcn.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace dyroot {

/// One template variable: `nbins` uniform bins in [lo, hi) of the double column `variable` (GeV for masses/momenta).
struct HistSpec {
   std::string variable = "mll";
   int nbins = 500;
   double lo = 110.0;
   double hi = 160.0;
};

/// The filled templates of one event loop.
struct TemplateResult {
   /// Histograms `<variable>_inclusive` and `<variable>_<category>` for each spec, in
   /// spec order, inclusive first; TH1D with Sumw2, raw generated counts.
   std::vector<std::shared_ptr<TH1D>> histograms;
   /// Selected events: index 0 inclusive, then one per category.
   std::vector<ULong64_t> nSelected;
   /// Number of threads (RDataFrame slots) of the event loop.
   unsigned threads = 1;
   /// Wall time of the event loop, seconds.
   double seconds = 0.0;
};

/// A built bundle: the flow compiled by SOFIE plus the event machinery (abstract: the
/// implementation lives in the bundle's library).
class Generator {
public:
   virtual ~Generator() = default;

   /// sha256 of the bundle's defining files (as `dyroot.bundle.Bundle.hash`).
   virtual std::string BundleHash() const = 0;
   /// The build record as JSON: hash, batch, dimensions, context, selection,
   /// categories, sigma_pb, columns, compiler and flags, versions.
   virtual std::string Info() const = 0;
   /// Events per SOFIE inference call (the bundle's `sofie_batch`).
   virtual unsigned BatchSize() const = 0;
   /// Category names of the bundle's scheme, in index order.
   virtual std::vector<std::string> CategoryNames() const = 0;
   /// Cross-section in pb that the flow's full output represents.
   virtual double SigmaPb() const = 0;
   /// The event columns, in order, and their C++ types.
   virtual std::vector<std::string> ColumnNames() const = 0;
   virtual std::vector<std::string> ColumnTypes() const = 0;

   /// An RDataFrame whose entries are the generated events with global indices
   /// first .. first+n-1 of the stream `seed` (one event per entry, named columns).
   /// Uses ImplicitMT if it is enabled when this is called; the values are the same
   /// for any number of threads.
   virtual ROOT::RDataFrame Events(ULong64_t n, ULong64_t seed, ULong64_t first = 0) const = 0;
   /// The same events as RVec columns, one batch (up to BatchSize() events) per entry.
   virtual ROOT::RDataFrame EventBatches(ULong64_t n, ULong64_t seed, ULong64_t first = 0) const = 0;

   /// Book every template on one RDataFrame and run one event loop (RunGraphs).
   /// \param method "events" (one event per entry) or "batches" (RVec columns).
   /// \param progress show ROOT's RDataFrame progress bar (events, rate) on stdout.
   virtual TemplateResult FillTemplates(ULong64_t n, ULong64_t seed, ULong64_t first,
                                        const std::vector<HistSpec> &specs, const std::string &method,
                                        bool progress = false) const = 0;
   /// The provenance JSON of a templates file (COMMON.md section 5) for a result of FillTemplates.
   virtual std::string ProvenanceJson(const TemplateResult &result, ULong64_t n, ULong64_t seed, ULong64_t first,
                                      const std::vector<HistSpec> &specs, const std::string &extraJson) const = 0;

   /// Raw generation without RDataFrame (tests, benchmarks): events first .. first+n-1.
   /// \param vars   n x 14 doubles, columns mu1_pt .. phill in `dyroot.features.EVENT_COLUMNS` order
   ///               (charges as +-1.0); may be nullptr
   /// \param cat    n ints, the category (-1: none); may be nullptr
   /// \param pass   n ints, 1 if the event passes the selection; may be nullptr
   /// \param flow   n x dim floats, the flow output (physical features); may be nullptr
   virtual void Generate(ULong64_t seed, ULong64_t first, ULong64_t n, double *vars, int *cat, int *pass,
                         float *flow) const = 0;
   /// Run the flow alone on `noise` (n x dim floats, n a multiple of BatchSize()) into `out` (n x dim).
   virtual void Infer(const float *noise, const float *context, ULong64_t n, float *out) const = 0;
   /// CPU seconds (of the calling thread) per batch, best of `repeat` runs of `nBatches`
   /// batches, of: {the flow inference, the model's Gemm calls alone (the same shapes and
   /// flags through the same BLAS), the random draws, a whole batch (draws + flow + muons +
   /// selection + category)}, followed by the Gemm FLOPs of one batch.
   virtual std::vector<double> BenchmarkInference(unsigned nBatches, unsigned repeat) const = 0;
};

/// The shared library of a bundle: `path` is a bundle directory (its `build/libdyroot.so`),
/// a build directory, or the library itself.
inline std::string LibraryPath(const std::string &path)
{
   std::vector<std::string> candidates = {path, path + "/libdyroot.so", path + "/build/libdyroot.so"};
   for (const auto &c : candidates) {
      Long_t id, flags, modtime;
      Long64_t size;
      if (gSystem->GetPathInfo(c.c_str(), &id, &size, &flags, &modtime) == 0 && !(flags & 2))
         return c;
   }
   throw std::runtime_error("dyroot: no libdyroot.so for '" + path +
                            "'; build it first with `dyroot build " + path + "` (or pass the library path)");
}

/// Load a bundle's library (once) and return its Generator.
inline Generator &Open(const std::string &path)
{
   const std::string lib = LibraryPath(path);
   if (gSystem->Load("libROOTVecOps") < 0 || gSystem->Load("libROOTDataFrame") < 0)
      throw std::runtime_error("dyroot: cannot load ROOT's libROOTVecOps/libROOTDataFrame; check the ROOT installation");
   if (gSystem->Load(lib.c_str()) < 0)
      throw std::runtime_error("dyroot: gSystem->Load(\"" + lib + "\") failed; rebuild with `dyroot build --force`");
   void *handle = dlopen(lib.c_str(), RTLD_NOW | RTLD_NOLOAD);
   if (!handle)
      handle = dlopen(lib.c_str(), RTLD_NOW);
   if (!handle)
      throw std::runtime_error("dyroot: dlopen(\"" + lib + "\") failed: " + dlerror());
   using Entry = Generator *(*)();
   auto entry = reinterpret_cast<Entry>(dlsym(handle, "dyroot_generator"));
   if (!entry)
      throw std::runtime_error("dyroot: " + lib + " has no dyroot_generator entry point; rebuild it");
   Generator *g = entry();
   if (!g)
      throw std::runtime_error("dyroot: the generator of " + lib + " failed to initialise");
   return *g;
}

/// Generated events as an RDataFrame, one per entry (see Generator::Events): the C++
/// twin of `dyroot.rdf.generated_events`. Call ROOT::EnableImplicitMT() first for threads.
inline ROOT::RDataFrame GeneratedEvents(const std::string &bundle, ULong64_t n, ULong64_t seed, ULong64_t first = 0)
{
   return Open(bundle).Events(n, seed, first);
}

} // namespace dyroot

#endif // DYROOT_API_HXX
