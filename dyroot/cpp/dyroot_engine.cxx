/// \file dyroot_engine.cxx
/// \brief libdyroot's event machinery: batches of generated events, two RDataFrame sources, templates.
///
/// The same code for every bundle; the model comes from dyroot_model.cxx through
/// GetModelInfo() and MakeSession(). Steps of one batch (GenerateBatch):
///   1. noise of events start .. start+B-1 from the Philox stream (dyroot_random.hxx);
///   2. conditional models: the category from u_context, one-hot into the context;
///   3. the flow (SOFIE) -> mll, ptll, yll, costheta, phi_cs (GeV);
///   4. muons from the dimuon and phill, selection, category (dyroot_kinematics.hxx).
/// Batches start at global indices that are multiples of B, whatever the first event
/// of a request, so an event's values depend only on (seed, its global index): the
/// output is identical for any number of threads, any sharding and any scheduling.
///
/// \author dyroot
/// \date 2026-12

#include "dyroot_api.hxx"
#include "dyroot_engine.hxx"

#include <ROOT/RDF/RColumnReaderBase.hxx>
#include <ROOT/RDataSource.hxx>
#include <ROOT/RDFHelpers.hxx>
#include <ROOT/RVec.hxx>
#include <TROOT.h>
#include <TSystem.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <limits>
#include <mutex>
#include <new>
#include <sstream>
#include <typeinfo>

#define DYROOT_EXPORT __attribute__((visibility("default")))

namespace dyroot {
namespace impl {

// ------------------------------------------------------------------------------------------------
// 1. One batch of events

void EventBatch::Resize(std::size_t n, int dim, int contextDim)
{
   event.resize(n);
   for (auto &v : var)
      v.resize(n);
   charge1.resize(n);
   charge2.resize(n);
   category.resize(n);
   pass.reset(new bool[n]());
   contextCategory.assign(n, -1);
   noise.resize(n * dim);
   context.assign(n * std::max(contextDim, 0), 0.0f);
   x.resize(n * dim);
   uContext.resize(n);
   size = n;
}

void GenerateBatch(ISession &session, EventBatch &b, std::uint64_t seed, std::uint64_t start)
{
   const ModelInfo &info = GetModelInfo();
   const std::size_t n = info.batch;
   const int dim = info.dim;
   if (b.size != n)
      b.Resize(n, dim, info.contextDim);
   // Steps 1-2: the random draws and the context.
   b.rng.Generate(seed, start, n, dim, b.noise.data(), b.var[kPhill].data(), b.uContext.data());
   if (info.contextDim > 0) {
      std::fill(b.context.begin(), b.context.end(), 0.0f);
      for (std::size_t e = 0; e < n; ++e) {
         const int c = random::ChooseCategory(b.uContext[e], info.contextEdges.data(), info.contextDim);
         b.contextCategory[e] = c;
         b.context[e * info.contextDim + c] = 1.0f;
      }
   }
   // Step 3: the flow.
   session.Infer(b.noise.data(), info.contextDim > 0 ? b.context.data() : nullptr, b.x.data());
   // Step 4: muons, selection, category.
   for (std::size_t e = 0; e < n; ++e) {
      const float *x = b.x.data() + e * dim;
      Dimuon d{x[0], x[1], x[2], x[3], x[4], b.var[kPhill][e]};
      const Muons m = MuonsFromDimuon(d.mll, d.ptll, d.yll, d.costheta, d.phi_cs, d.phill);
      const EventVars ev = MakeEventVars(d, m);
      for (int v = 0; v < kNVars; ++v)
         b.var[v][e] = ev.v[v];
      b.charge1[e] = m.charge[0];
      b.charge2[e] = m.charge[1];
      b.pass[e] = info.selection.Pass(ev);
      b.category[e] = info.categories.Assign(ev);
      b.event[e] = start + e;
   }
}

// ------------------------------------------------------------------------------------------------
// 2. Sessions: one per RDataFrame slot, recycled between event loops

class SessionPool {
public:
   std::unique_ptr<ISession> Acquire()
   {
      {
         std::lock_guard<std::mutex> lock(fMutex);
         if (!fFree.empty()) {
            auto s = std::move(fFree.back());
            fFree.pop_back();
            return s;
         }
      }
      return MakeSession();  // reads the weights: outside the lock
   }
   void Release(std::unique_ptr<ISession> s)
   {
      if (!s)
         return;
      std::lock_guard<std::mutex> lock(fMutex);
      fFree.push_back(std::move(s));
   }

private:
   std::mutex fMutex;
   std::vector<std::unique_ptr<ISession>> fFree;
};

struct Column {
   const char *name;
   const char *type;
   const std::type_info *tid;
};

const std::vector<Column> &Columns()
{
   static const std::vector<Column> cols = {
      {"event", "ULong64_t", &typeid(ULong64_t)}, {"mu1_pt", "double", &typeid(double)},
      {"mu1_eta", "double", &typeid(double)},     {"mu1_phi", "double", &typeid(double)},
      {"mu1_charge", "int", &typeid(int)},        {"mu2_pt", "double", &typeid(double)},
      {"mu2_eta", "double", &typeid(double)},     {"mu2_phi", "double", &typeid(double)},
      {"mu2_charge", "int", &typeid(int)},        {"mll", "double", &typeid(double)},
      {"ptll", "double", &typeid(double)},        {"yll", "double", &typeid(double)},
      {"costheta", "double", &typeid(double)},    {"phi_cs", "double", &typeid(double)},
      {"phill", "double", &typeid(double)},       {"category", "int", &typeid(int)},
      {"pass_selection", "bool", &typeid(bool)},  {"weight", "double", &typeid(double)},
      {"context_category", "int", &typeid(int)},
   };
   return cols;
}

/// Number of columns offered: context_category only for conditional models.
int NColumns()
{
   return GetModelInfo().contextDim > 0 ? kNColumns : kNColumns - 1;
}

/// Address of element 0 of a column in a batch (nullptr for the per-source `weight`).
void *ColumnBase(EventBatch &b, int col)
{
   switch (col) {
   case kColEvent: return b.event.data();
   case kColMu1Pt: return b.var[kMu1Pt].data();
   case kColMu1Eta: return b.var[kMu1Eta].data();
   case kColMu1Phi: return b.var[kMu1Phi].data();
   case kColMu1Charge: return b.charge1.data();
   case kColMu2Pt: return b.var[kMu2Pt].data();
   case kColMu2Eta: return b.var[kMu2Eta].data();
   case kColMu2Phi: return b.var[kMu2Phi].data();
   case kColMu2Charge: return b.charge2.data();
   case kColMll: return b.var[kMll].data();
   case kColPtll: return b.var[kPtll].data();
   case kColYll: return b.var[kYll].data();
   case kColCostheta: return b.var[kCostheta].data();
   case kColPhiCs: return b.var[kPhiCs].data();
   case kColPhill: return b.var[kPhill].data();
   case kColCategory: return b.category.data();
   case kColPass: return b.pass.get();
   case kColContextCategory: return b.contextCategory.data();
   default: return nullptr;
   }
}

std::size_t ColumnSize(int col)
{
   const auto &t = *Columns()[col].tid;
   if (t == typeid(double))
      return sizeof(double);
   if (t == typeid(int))
      return sizeof(int);
   if (t == typeid(bool))
      return sizeof(bool);
   return sizeof(ULong64_t);
}

// ------------------------------------------------------------------------------------------------
// 3. The RDataFrame sources

/// State of one slot: its session and its current batch.
struct SlotState {
   std::unique_ptr<ISession> session;
   EventBatch batch;
   std::uint64_t start = std::numeric_limits<std::uint64_t>::max();  ///< global index of batch element 0
   std::size_t offset = 0;  ///< current event: batch element (events) or first element of the view (batches)
   std::size_t length = 0;  ///< batches: number of events of the current entry
};

/// Common part of the two sources: n events from `first` of stream `seed`, per-slot batches.
class SourceBase : public ROOT::RDF::RDataSource {
protected:
   std::shared_ptr<SessionPool> fPool;
   std::uint64_t fN, fSeed, fFirst;
   std::uint64_t fB;
   double fWeight;
   std::vector<std::string> fNames;
   std::vector<std::unique_ptr<SlotState>> fSlots;
   std::vector<std::pair<ULong64_t, ULong64_t>> fRanges;  ///< all ranges (built lazily, in groups)
   std::uint64_t fNextEntry = 0;
   std::uint64_t fEntries = 0;  ///< entries of this source (events or batches)

   // Progress (optional): events generated so far, printed to stderr at most once a second.
   bool fProgress = false;
   std::atomic<std::uint64_t> fDone{0};
   std::atomic<std::int64_t> fLastPrint{0};
   std::chrono::steady_clock::time_point fStart;

   /// Make the slot's batch the one that starts at global index `start`.
   void Ensure(SlotState &s, std::uint64_t start)
   {
      if (s.start == start)
         return;
      if (!s.session)
         s.session = fPool->Acquire();
      GenerateBatch(*s.session, s.batch, fSeed, start);
      s.start = start;
      if (fProgress)
         Progress(fB);
   }
   void Progress(std::uint64_t generated, bool last = false)
   {
      const std::uint64_t done = std::min(fDone += generated, fN);
      const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - fStart).count();
      std::int64_t prev = fLastPrint.load();
      const auto now = static_cast<std::int64_t>(t);
      if (!last && (now <= prev || !fLastPrint.compare_exchange_strong(prev, now)))
         return;
      const double rate = t > 0 ? done / t : 0.0;
      std::fprintf(stderr, "\rdyroot: %5.1f%%  %.4g of %.4g events  %.3g events/s  ETA %.0f s   %s",
                   fN ? 100.0 * done / fN : 100.0, double(done), double(fN), rate,
                   rate > 0 ? (fN - done) / rate : 0.0, last ? "\n" : "");
      std::fflush(stderr);
   }
   /// Entry boundaries of the next group of ranges; each range a whole number of batches.
   virtual std::uint64_t EntriesPerRange() const = 0;

public:
   SourceBase(std::shared_ptr<SessionPool> pool, std::uint64_t n, std::uint64_t seed, std::uint64_t first)
      : fPool(std::move(pool)), fN(n), fSeed(seed), fFirst(first), fB(GetModelInfo().batch),
        fWeight(n > 0 ? GetModelInfo().sigmaPb / static_cast<double>(n) : 0.0)
   {
      for (int c = 0; c < NColumns(); ++c)
         fNames.emplace_back(Columns()[c].name);
   }
   ~SourceBase() override
   {
      for (auto &s : fSlots)
         if (s)
            fPool->Release(std::move(s->session));
   }
   void SetNSlots(unsigned int nSlots) override
   {
      fNSlots = nSlots;
      fSlots.clear();
      const auto &info = GetModelInfo();
      for (unsigned i = 0; i < nSlots; ++i) {
         fSlots.emplace_back(new SlotState);
         fSlots.back()->batch.Resize(info.batch, info.dim, info.contextDim);  // fixed addresses from now on
      }
   }
   const std::vector<std::string> &GetColumnNames() const override { return fNames; }
   bool HasColumn(std::string_view name) const override
   {
      return std::find(fNames.begin(), fNames.end(), name) != fNames.end();
   }
   int ColumnIndex(std::string_view name) const
   {
      auto it = std::find(fNames.begin(), fNames.end(), name);
      if (it == fNames.end())
         throw std::runtime_error("dyroot: generated events have no column '" + std::string(name) + "'");
      return static_cast<int>(it - fNames.begin());
   }
   void SetProgress(bool on) { fProgress = on; }
   void Initialize() override
   {
      fNextEntry = 0;
      fDone = 0;
      fLastPrint = 0;
      fStart = std::chrono::steady_clock::now();
   }
   void Finalize() override
   {
      if (fProgress)
         Progress(0, true);
   }
   std::vector<std::pair<ULong64_t, ULong64_t>> GetEntryRanges() override
   {
      // Groups of at most 256 ranges: constant memory whatever n.
      std::vector<std::pair<ULong64_t, ULong64_t>> out;
      const std::uint64_t per = EntriesPerRange();
      while (fNextEntry < fEntries && out.size() < 256) {
         const std::uint64_t end = std::min(fEntries, NextBoundary(fNextEntry, per));
         out.emplace_back(fNextEntry, end);
         fNextEntry = end;
      }
      return out;
   }
   /// The first range boundary after `entry`: aligned so that no batch is split between ranges.
   virtual std::uint64_t NextBoundary(std::uint64_t entry, std::uint64_t per) const = 0;

protected:
   /// Empty: RDataFrame then uses GetColumnReaders(slot, name, type) (the reader-per-slot interface).
   Record_t GetColumnReadersImpl(std::string_view, const std::type_info &) override { return {}; }
};

/// Reader of one column of the event source: a pointer into the slot's batch.
class EventReader final : public ROOT::Detail::RDF::RColumnReaderBase {
   const SlotState *fSlot;
   char *fBase;
   std::size_t fSize;

   void *GetImpl(Long64_t) final { return fBase + fSize * (fSize ? fSlot->offset : 0); }

public:
   EventReader(const SlotState *slot, void *base, std::size_t size)
      : fSlot(slot), fBase(static_cast<char *>(base)), fSize(size)
   {
   }
};

/// One generated event per entry: entry e is the event with global index first + e.
class EventSource final : public SourceBase {
   std::uint64_t EntriesPerRange() const override
   {
      // Enough ranges for load balancing (>= 8 per slot), at most 64 batches each.
      const std::uint64_t batches = (fN + fB - 1) / fB;
      const std::uint64_t perRange = std::clamp<std::uint64_t>(batches / (8 * std::max(1u, fNSlots)), 1, 64);
      return perRange * fB;
   }
   std::uint64_t NextBoundary(std::uint64_t entry, std::uint64_t per) const override
   {
      const std::uint64_t g = fFirst + entry;
      return (g / per + 1) * per - fFirst;  // global multiples of `per` (a multiple of B)
   }

public:
   EventSource(std::shared_ptr<SessionPool> pool, std::uint64_t n, std::uint64_t seed, std::uint64_t first)
      : SourceBase(std::move(pool), n, seed, first)
   {
      fEntries = n;
   }
   std::string GetLabel() override { return "dyroot generated events"; }
   std::string GetTypeName(std::string_view name) const override { return Columns()[ColumnIndex(name)].type; }
   std::unique_ptr<ROOT::Detail::RDF::RColumnReaderBase>
   GetColumnReaders(unsigned int slot, std::string_view name, const std::type_info &tid) override
   {
      const int c = ColumnIndex(name);
      if (tid != *Columns()[c].tid)
         throw std::runtime_error("dyroot: column '" + std::string(name) + "' has type " + Columns()[c].type +
                                  ", it was read with another type");
      SlotState *s = fSlots.at(slot).get();
      if (c == kColWeight)
         return std::make_unique<EventReader>(s, &fWeight, 0);
      return std::make_unique<EventReader>(s, ColumnBase(s->batch, c), ColumnSize(c));
   }
   bool SetEntry(unsigned int slot, ULong64_t entry) override
   {
      SlotState &s = *fSlots[slot];
      const std::uint64_t g = fFirst + entry;
      Ensure(s, g - g % fB);
      s.offset = g - s.start;
      return true;
   }
};

/// Reader of one column of the batch source: an RVec viewing the slot's batch (no copy).
template <typename T>
class BatchReader final : public ROOT::Detail::RDF::RColumnReaderBase {
   const SlotState *fSlot;
   T *fBase;
   double *fWeight;
   std::vector<double> fWeights;  // the `weight` column: a constant vector
   ROOT::RVec<T> fView;

   void *GetImpl(Long64_t) final
   {
      if constexpr (std::is_same_v<T, double>) {
         if (fWeight) {
            if (fWeights.size() < fSlot->length)
               fWeights.assign(fSlot->length, *fWeight);
            fView.~RVec<T>();
            new (&fView) ROOT::RVec<T>(fWeights.data(), fSlot->length);
            return &fView;
         }
      }
      fView.~RVec<T>();
      new (&fView) ROOT::RVec<T>(fBase + fSlot->offset, fSlot->length);
      return &fView;
   }

public:
   BatchReader(const SlotState *slot, T *base, double *weight) : fSlot(slot), fBase(base), fWeight(weight) {}
};

/// One batch per entry (RVec columns): entry e holds the events of the global batch
/// first/B + e that lie in [first, first + n).
class BatchSource final : public SourceBase {
   std::uint64_t fFirstBatch;
   std::uint64_t EntriesPerRange() const override
   {
      return std::clamp<std::uint64_t>(fEntries / (8 * std::max(1u, fNSlots)), 1, 64);
   }
   std::uint64_t NextBoundary(std::uint64_t entry, std::uint64_t per) const override { return entry + per; }

public:
   BatchSource(std::shared_ptr<SessionPool> pool, std::uint64_t n, std::uint64_t seed, std::uint64_t first)
      : SourceBase(std::move(pool), n, seed, first), fFirstBatch(first / fB)
   {
      fEntries = n == 0 ? 0 : (first + n - 1) / fB - fFirstBatch + 1;
   }
   std::string GetLabel() override { return "dyroot generated event batches"; }
   std::string GetTypeName(std::string_view name) const override
   {
      return std::string("ROOT::VecOps::RVec<") + Columns()[ColumnIndex(name)].type + ">";
   }
   std::unique_ptr<ROOT::Detail::RDF::RColumnReaderBase>
   GetColumnReaders(unsigned int slot, std::string_view name, const std::type_info &tid) override
   {
      const int c = ColumnIndex(name);
      SlotState *s = fSlots.at(slot).get();
      void *base = c == kColWeight ? nullptr : ColumnBase(s->batch, c);
      const auto &t = *Columns()[c].tid;
      auto bad = [&]() {
         return std::runtime_error("dyroot: batch column '" + std::string(name) + "' has type " +
                                   GetTypeName(name) + ", it was read with another type");
      };
      if (t == typeid(double)) {
         if (tid != typeid(ROOT::RVec<double>))
            throw bad();
         return std::make_unique<BatchReader<double>>(s, static_cast<double *>(base),
                                                      c == kColWeight ? &fWeight : nullptr);
      }
      if (t == typeid(int)) {
         if (tid != typeid(ROOT::RVec<int>))
            throw bad();
         return std::make_unique<BatchReader<int>>(s, static_cast<int *>(base), nullptr);
      }
      if (t == typeid(bool)) {
         if (tid != typeid(ROOT::RVec<bool>))
            throw bad();
         return std::make_unique<BatchReader<bool>>(s, static_cast<bool *>(base), nullptr);
      }
      if (tid != typeid(ROOT::RVec<ULong64_t>))
         throw bad();
      return std::make_unique<BatchReader<ULong64_t>>(s, static_cast<ULong64_t *>(base), nullptr);
   }
   bool SetEntry(unsigned int slot, ULong64_t entry) override
   {
      SlotState &s = *fSlots[slot];
      const std::uint64_t start = (fFirstBatch + entry) * fB;
      Ensure(s, start);
      const std::uint64_t lo = std::max(start, fFirst), hi = std::min(start + fB, fFirst + fN);
      s.offset = lo - start;
      s.length = hi - lo;
      return true;
   }
};

// ------------------------------------------------------------------------------------------------
// 4. The Generator of this bundle

/// CPU seconds used by the calling thread.
double ThreadSeconds()
{
   timespec ts;
   clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
   return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

std::string JsonString(const std::string &s)
{
   std::string out = "\"";
   for (char c : s) {
      switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
         if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
         } else {
            out += c;
         }
      }
   }
   return out + "\"";
}

std::string JsonNumber(double x)
{
   char buf[32];
   std::snprintf(buf, sizeof buf, "%.17g", x);
   return buf;
}

class BundleGenerator final : public Generator {
   std::shared_ptr<SessionPool> fPool = std::make_shared<SessionPool>();

   using Clock = std::chrono::steady_clock;

   std::string RegionName(const HistSpec &spec, int region) const
   {
      const auto names = CategoryNames();
      return spec.variable + "_" + (region < 0 ? std::string("inclusive") : names[region]);
   }
   /// Titles as dyroot.templates writes them: "<label>, <region>", axis "<label> [unit]", "Events / <width>".
   void SetTitles(TH1D &h, const HistSpec &spec, int region) const
   {
      static const std::vector<std::pair<std::string, std::string>> labels = {
         {"mll", "m_{#mu#mu} [GeV]"},       {"ptll", "p_{T}^{#mu#mu} [GeV]"}, {"yll", "y_{#mu#mu}"},
         {"costheta", "cos#theta*_{CS}"},   {"phi_cs", "#phi*_{CS}"},         {"phill", "#phi_{#mu#mu}"},
         {"mu1_pt", "p_{T}^{#mu1} [GeV]"}, {"mu2_pt", "p_{T}^{#mu2} [GeV]"}, {"mu1_eta", "#eta^{#mu1}"},
         {"mu2_eta", "#eta^{#mu2}"}};
      std::string label = spec.variable;
      for (const auto &l : labels)
         if (l.first == spec.variable)
            label = l.second;
      const std::string regionName = region < 0 ? std::string("inclusive") : CategoryNames()[region];
      h.SetTitle((label.substr(0, label.find(" [")) + ", " + regionName).c_str());
      h.GetXaxis()->SetTitle(label.c_str());
      char width[64];
      std::snprintf(width, sizeof width, "Events / %g", (spec.hi - spec.lo) / spec.nbins);
      h.GetYaxis()->SetTitle(width);
   }
   static std::string BinningJson(const HistSpec &s)
   {
      return "{\"variable\": " + JsonString(s.variable) + ", \"lo\": " + JsonNumber(s.lo) + ", \"hi\": " +
             JsonNumber(s.hi) + ", \"width\": " + JsonNumber((s.hi - s.lo) / s.nbins) +
             ", \"nbins\": " + std::to_string(s.nbins) + "}";
   }

   static void CheckSpecs(const std::vector<HistSpec> &specs)
   {
      for (const auto &s : specs) {
         bool isDouble = false;
         for (int c = 0; c < kNColumns; ++c)
            if (s.variable == Columns()[c].name && *Columns()[c].tid == typeid(double) && c != kColWeight)
               isDouble = true;
         if (!isDouble)
            throw std::invalid_argument("dyroot: cannot make templates of '" + s.variable +
                                        "': choose a kinematic column (mll, ptll, yll, costheta, phi_cs, phill, "
                                        "mu1_pt, mu1_eta, mu1_phi, mu2_pt, mu2_eta, mu2_phi)");
         if (s.nbins < 1 || !(s.hi > s.lo))
            throw std::invalid_argument("dyroot: the binning of '" + s.variable + "' is empty; need nbins >= 1 and hi > lo");
      }
   }

public:
   std::string BundleHash() const override { return GetModelInfo().hash; }
   unsigned BatchSize() const override { return GetModelInfo().batch; }
   double SigmaPb() const override { return GetModelInfo().sigmaPb; }
   std::vector<std::string> CategoryNames() const override { return GetModelInfo().categories.Names(); }
   std::vector<std::string> ColumnNames() const override
   {
      std::vector<std::string> out;
      for (int c = 0; c < NColumns(); ++c)
         out.emplace_back(Columns()[c].name);
      return out;
   }
   std::vector<std::string> ColumnTypes() const override
   {
      std::vector<std::string> out;
      for (int c = 0; c < NColumns(); ++c)
         out.emplace_back(Columns()[c].type);
      return out;
   }
   std::string Info() const override { return GetModelInfo().buildJson; }

   ROOT::RDataFrame Events(ULong64_t n, ULong64_t seed, ULong64_t first) const override
   {
      return ROOT::RDataFrame(std::make_unique<EventSource>(fPool, n, seed, first));
   }
   ROOT::RDataFrame EventBatches(ULong64_t n, ULong64_t seed, ULong64_t first) const override
   {
      return ROOT::RDataFrame(std::make_unique<BatchSource>(fPool, n, seed, first));
   }

   TemplateResult FillTemplates(ULong64_t n, ULong64_t seed, ULong64_t first, const std::vector<HistSpec> &specs,
                                const std::string &method, bool progress) const override
   {
      CheckSpecs(specs);
      const int nCat = static_cast<int>(GetModelInfo().categories.size());
      std::vector<ROOT::RDF::RResultPtr<TH1D>> hists;
      std::vector<ROOT::RDF::RResultPtr<ULong64_t>> counts;
      std::vector<ROOT::RDF::RResultPtr<double>> sums;
      std::vector<ROOT::RDF::RResultHandle> handles;
      TemplateResult result;
      if (method == "events") {
         auto source = std::make_unique<EventSource>(fPool, n, seed, first);
         source->SetProgress(progress);
         ROOT::RDataFrame df(std::move(source));
         std::vector<ROOT::RDF::RNode> regions;
         regions.emplace_back(df.Filter([](bool p) { return p; }, {"pass_selection"}));
         for (int c = 0; c < nCat; ++c)
            regions.emplace_back(regions[0].Filter([c](int k) { return k == c; }, {"category"}));
         for (int r = 0; r <= nCat; ++r)
            counts.push_back(regions[r].Count());
         for (const auto &s : specs)
            for (int r = 0; r <= nCat; ++r) {
               const std::string name = RegionName(s, r - 1);
               hists.push_back(regions[r].Histo1D<double>({name.c_str(), name.c_str(), s.nbins, s.lo, s.hi}, s.variable));
            }
         result.threads = df.GetNSlots();
         for (auto &h : hists)
            handles.emplace_back(h);
         for (auto &c : counts)
            handles.emplace_back(c);
         const auto t0 = Clock::now();
         ROOT::RDF::RunGraphs(handles);
         result.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
      } else if (method == "batches") {
         auto source = std::make_unique<BatchSource>(fPool, n, seed, first);
         source->SetProgress(progress);
         ROOT::RDataFrame df(std::move(source));
         using RVecB = ROOT::RVec<bool>;
         using RVecI = ROOT::RVec<int>;
         using RVecD = ROOT::RVec<double>;
         ROOT::RDF::RNode node = df;
         for (int r = 0; r <= nCat; ++r) {
            const std::string mask = "dyroot_mask_" + std::to_string(r);
            node = node.Define(mask, [r](const RVecB &p, const RVecI &c) {
               RVecI m(p.size());
               for (std::size_t i = 0; i < p.size(); ++i)
                  m[i] = p[i] && (r == 0 || c[i] == r - 1);
               return m;
            }, {"pass_selection", "category"});
            node = node.Define(mask + "_n", [](const RVecI &m) { return static_cast<double>(ROOT::VecOps::Sum(m)); },
                               {mask});
         }
         for (const auto &s : specs)
            for (int r = 0; r <= nCat; ++r) {
               const std::string col = "dyroot_" + s.variable + "_" + std::to_string(r);
               node = node.Define(col, [](const RVecD &v, const RVecI &m) { return v[m]; },
                                  {s.variable, "dyroot_mask_" + std::to_string(r)});
            }
         for (int r = 0; r <= nCat; ++r)
            sums.push_back(node.Sum<double>("dyroot_mask_" + std::to_string(r) + "_n"));
         for (const auto &s : specs)
            for (int r = 0; r <= nCat; ++r) {
               const std::string name = RegionName(s, r - 1);
               const std::string col = "dyroot_" + s.variable + "_" + std::to_string(r);
               hists.push_back(node.Histo1D<RVecD>({name.c_str(), name.c_str(), s.nbins, s.lo, s.hi}, col));
            }
         result.threads = df.GetNSlots();
         for (auto &h : hists)
            handles.emplace_back(h);
         for (auto &c : sums)
            handles.emplace_back(c);
         const auto t0 = Clock::now();
         ROOT::RDF::RunGraphs(handles);
         result.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
      } else {
         throw std::invalid_argument("dyroot: unknown template method '" + method + "'; use \"events\" or \"batches\"");
      }
      std::size_t i = 0;
      for (const auto &s : specs)
         for (int r = 0; r <= nCat; ++r) {
            auto *copy = static_cast<TH1D *>(hists[i++]->Clone());
            copy->SetDirectory(nullptr);
            copy->Sumw2(true);  // unit weights: sumw2 = counts
            SetTitles(*copy, s, r - 1);
            result.histograms.emplace_back(copy);
         }
      for (auto &c : counts)
         result.nSelected.push_back(*c);
      for (auto &s : sums)
         result.nSelected.push_back(static_cast<ULong64_t>(*s + 0.5));
      return result;
   }

   std::string ProvenanceJson(const TemplateResult &result, ULong64_t n, ULong64_t seed, ULong64_t first,
                              const std::vector<HistSpec> &specs, const std::string &extraJson) const override
   {
      // The keys of dyroot.generate's provenance and dyroot.templates' file record (COMMON.md section 5).
      const ModelInfo &info = GetModelInfo();
      const auto names = CategoryNames();
      std::ostringstream js;
      js << "{\"backend\": \"sofie\", \"device\": \"cpu\"";
      js << ", \"bundle_hash\": " << JsonString(info.hash);
      js << ", \"seed\": " << seed << ", \"first_event\": " << first << ", \"n_events\": " << n;
      js << ", \"n_selected\": {\"inclusive\": " << (result.nSelected.empty() ? 0 : result.nSelected[0]);
      for (std::size_t c = 0; c < names.size() && c + 1 < result.nSelected.size(); ++c)
         js << ", " << JsonString(names[c]) << ": " << result.nSelected[c + 1];
      js << "}, \"threads\": " << result.threads << ", \"batch_size\": " << info.batch
         << ", \"precision\": \"fp32\"";
      js << ", \"sigma_pb\": " << JsonNumber(info.sigmaPb);
      js << ", \"selection\": " << info.selectionJson << ", \"categories\": " << info.categoriesJson;
      js << ", \"category_names\": [";
      for (std::size_t c = 0; c < names.size(); ++c)
         js << (c ? ", " : "") << JsonString(names[c]);
      js << "], \"binning\": " << (specs.empty() ? std::string("null") : BinningJson(specs[0]));
      js << ", \"extra_binnings\": [";
      for (std::size_t i = 1; i < specs.size(); ++i)
         js << (i > 1 ? ", " : "") << BinningJson(specs[i]);
      js << "], \"normalisation\": {\"lumi_fb\": null, \"mode\": \"counts\", \"scale\": 1.0}";
      js << ", \"random\": {\"generator\": \"philox4x32-10\", \"layout\": \"dyroot.random\", \"tag\": "
         << random::kNoiseTag << "}";
      js << ", \"context\": " << info.contextJson;
      js << ", \"host\": " << JsonString(gSystem->HostName());
      js << ", \"wall_s\": " << JsonNumber(result.seconds);
      js << ", \"versions\": {\"root\": " << JsonString(gROOT->GetVersion()) << ", \"libdyroot\": " << info.buildJson
         << "}";
      if (!extraJson.empty())
         js << ", " << extraJson;
      js << "}";
      return js.str();
   }

   void Generate(ULong64_t seed, ULong64_t first, ULong64_t n, double *vars, int *cat, int *pass,
                 float *flow) const override
   {
      const ModelInfo &info = GetModelInfo();
      const std::uint64_t B = info.batch;
      auto session = fPool->Acquire();
      EventBatch b;
      for (std::uint64_t start = first - first % B; start < first + n; start += B) {
         GenerateBatch(*session, b, seed, start);
         const std::uint64_t lo = std::max<std::uint64_t>(start, first), hi = std::min<std::uint64_t>(start + B, first + n);
         for (std::uint64_t g = lo; g < hi; ++g) {
            const std::size_t e = g - start, o = g - first;
            if (vars)
               for (int v = 0; v < kMaxAbsEta; ++v)
                  vars[o * kMaxAbsEta + v] = b.var[v][e];
            if (cat)
               cat[o] = b.category[e];
            if (pass)
               pass[o] = b.pass[e];
            if (flow)
               std::copy(b.x.begin() + e * info.dim, b.x.begin() + (e + 1) * info.dim, flow + o * info.dim);
         }
      }
      fPool->Release(std::move(session));
   }

   void Infer(const float *noise, const float *context, ULong64_t n, float *out) const override
   {
      const ModelInfo &info = GetModelInfo();
      if (n % info.batch != 0)
         throw std::invalid_argument("dyroot: Infer needs a multiple of the batch size " +
                                     std::to_string(info.batch) + " events, got " + std::to_string(n));
      auto session = fPool->Acquire();
      for (ULong64_t i = 0; i < n; i += info.batch)
         session->Infer(noise + i * info.dim, context ? context + i * info.contextDim : nullptr, out + i * info.dim);
      fPool->Release(std::move(session));
   }

   std::vector<double> BenchmarkInference(unsigned nBatches, unsigned repeat) const override
   {
      const ModelInfo &info = GetModelInfo();
      const std::size_t B = info.batch;
      auto session = fPool->Acquire();
      EventBatch b;
      b.Resize(B, info.dim, info.contextDim);
      b.rng.Generate(1, 0, B, info.dim, b.noise.data(), b.var[kPhill].data(), b.uContext.data());
      // CPU time of this thread, not wall time: the figures stay meaningful on a shared machine.
      auto best = [&](auto &&fn) {
         double t = 1e300;
         for (unsigned r = 0; r < std::max(1u, repeat); ++r) {
            const double t0 = ThreadSeconds();
            for (unsigned i = 0; i < nBatches; ++i)
               fn(i);
            t = std::min(t, (ThreadSeconds() - t0) / nBatches);
         }
         return t;
      };
      const float *ctx = info.contextDim > 0 ? b.context.data() : nullptr;
      const double tInfer = best([&](unsigned) { session->Infer(b.noise.data(), ctx, b.x.data()); });
      // The Gemm calls alone: the same shapes, flags and BLAS as the model, on scratch buffers.
      std::size_t maxA = 1, maxB = 1, maxC = 1;
      for (const auto &g : info.gemms) {
         maxA = std::max<std::size_t>(maxA, std::size_t(g.m) * g.k);
         maxB = std::max<std::size_t>(maxB, std::size_t(g.k) * g.n);
         maxC = std::max<std::size_t>(maxC, std::size_t(g.m) * g.n);
      }
      std::vector<float> A(maxA, 0.01f), Bm(maxB, 0.02f), C(maxC, 0.0f);
      const double tGemm = info.gemms.empty() ? 0.0 : best([&](unsigned) {
         for (const auto &g : info.gemms) {
            const char ta = g.transA ? 't' : 'n', tb = g.transB ? 't' : 'n';
            const int lda = g.transA ? g.k : g.m, ldb = g.transB ? g.n : g.k, ldc = g.m;
            const float alpha = 1.0f, beta = 1.0f;
            ModelSgemm(&ta, &tb, &g.m, &g.n, &g.k, &alpha, A.data(), &lda, Bm.data(), &ldb, &beta, C.data(), &ldc);
         }
      });
      const double tNoise = best([&](unsigned i) {
         b.rng.Generate(7, std::uint64_t(i) * B, B, info.dim, b.noise.data(), b.var[kPhill].data(), b.uContext.data());
      });
      const double tBatch = best([&](unsigned i) { GenerateBatch(*session, b, 7, std::uint64_t(i) * B); });
      fPool->Release(std::move(session));
      double flops = 0;
      for (const auto &g : info.gemms)
         flops += 2.0 * g.m * g.n * g.k;
      return {tInfer, tGemm, tNoise, tBatch, flops};
   }
};

} // namespace impl
} // namespace dyroot

/// The entry point of this bundle's library (found with dlsym on its own handle).
extern "C" DYROOT_EXPORT dyroot::Generator *dyroot_generator()
{
   static dyroot::impl::BundleGenerator generator;
   return &generator;
}
