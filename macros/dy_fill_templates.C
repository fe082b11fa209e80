/// \file
/// \brief Templates of m_mumu per category from a model bundle, in pure C++ ROOT: SOFIE inside RDataFrame.
///
/// Generates `nEvents` Drell-Yan events with the bundle's normalizing flow (SOFIE code
/// compiled into the bundle's libdyroot), applies the bundle's selection and categories,
/// and writes the templates file of every dyroot backend (COMMON.md section 5): TH1D
/// `mll_inclusive` and `mll_<category>` (Sumw2, raw generated counts) and the TNamed
/// `dyroot_provenance` (JSON). The same seed gives the same histograms, bin for bin, as
/// `dyroot generate --backend sofie` and `dyroot.rdf.fill_templates`, for any number of threads.
///
/// Needs the bundle's library, built once with `dyroot build BUNDLE` (this macro does not
/// run Python). Usage, from the repository root:
///
/// ~~~{.sh}
/// dyroot build model/
/// root -l -b -q 'macros/dy_fill_templates.C("model", 100000000, 1, "templates.root")'
/// root -l -b -q 'macros/dy_fill_templates.C("model", 1000000, 7, "t.root", 2, 0, true)'  # 2 threads, overwrite
/// ~~~
///
/// Arguments: bundle directory (or its libdyroot.so), events generated (before cuts), seed,
/// output file, threads (0: every core, 1: none), global index of the first event (shards),
/// overwrite an existing output, m_mumu binning (lo, hi in GeV, number of bins).
/// Returns 0 on success, 1 on error (the message says why); `root -q` exits with it.
///
/// \author dyroot
/// \date 2026-12

#include "../dyroot/cpp/dyroot_api.hxx"

#include <ROOT/RDataFrame.hxx>
#include <TFile.h>
#include <TNamed.h>
#include <TROOT.h>
#include <TSystem.h>

#include <chrono>
#include <iostream>
#include <string>
#include <vector>

int dy_fill_templates(const char *bundle = "model", ULong64_t nEvents = 1000000, ULong64_t seed = 1,
                      const char *output = "templates.root", int threads = 0, ULong64_t firstEvent = 0,
                      bool force = false, double lo = 110.0, double hi = 160.0, int nbins = 500)
{
   try {
      // ---------------------------------------------------------------------------------
      // 1. Check the output: never overwrite without `force`.
      const std::string out = output;
      if (!gSystem->AccessPathName(out.c_str()) && !force) {
         std::cerr << "dy_fill_templates: " << out << " exists; pass force=true (7th argument) to overwrite it\n";
         return 1;
      }

      // ---------------------------------------------------------------------------------
      // 2. Threads: one SOFIE session per RDataFrame slot.
      if (threads != 1)
         ROOT::EnableImplicitMT(threads > 0 ? threads : 0);

      // ---------------------------------------------------------------------------------
      // 3. The bundle's generator (libdyroot built by `dyroot build BUNDLE`).
      dyroot::Generator &gen = dyroot::Open(bundle);
      std::cout << "dy_fill_templates: bundle " << gen.BundleHash().substr(0, 12) << ", " << nEvents
                << " events from " << firstEvent << ", seed " << seed << ", batch " << gen.BatchSize() << "\n";

      // ---------------------------------------------------------------------------------
      // 4. Book every histogram, run one event loop.
      dyroot::HistSpec mll;
      mll.variable = "mll";
      mll.nbins = nbins;
      mll.lo = lo;
      mll.hi = hi;
      const std::vector<dyroot::HistSpec> specs = {mll};
      const bool progress = nEvents >= 10000000;  // ROOT's progress bar for long runs
      dyroot::TemplateResult result = gen.FillTemplates(nEvents, seed, firstEvent, specs, "events", progress);
      std::cout << "dy_fill_templates: " << result.nSelected[0] << " events selected in " << result.seconds << " s ("
                << nEvents / result.seconds << " events/s on " << result.threads << " threads)\n";

      // ---------------------------------------------------------------------------------
      // 5. Write to a temporary file in the same directory, then rename (no half-written output).
      const std::string tmp = out + ".tmp" + std::to_string(gSystem->GetPid());
      {
         std::unique_ptr<TFile> f(TFile::Open(tmp.c_str(), "RECREATE"));
         if (!f || f->IsZombie()) {
            std::cerr << "dy_fill_templates: cannot write " << tmp << "\n";
            return 1;
         }
         for (auto &h : result.histograms)
            f->WriteObject(h.get(), h->GetName());
         const std::string prov =
            gen.ProvenanceJson(result, nEvents, seed, firstEvent, specs, "\"method\": \"events\", \"interface\": \"macro\"");
         TNamed named("dyroot_provenance", prov.c_str());
         f->WriteObject(&named, "dyroot_provenance");
         f->Close();
      }
      if (gSystem->Rename(tmp.c_str(), out.c_str()) != 0) {
         std::cerr << "dy_fill_templates: cannot rename " << tmp << " to " << out << "\n";
         gSystem->Unlink(tmp.c_str());
         return 1;
      }
      std::cout << "dy_fill_templates: wrote " << out << "\n";
      return 0;
   } catch (const std::exception &err) {
      std::cerr << "dy_fill_templates: error: " << err.what() << "\n";
      return 1;
   }
}
