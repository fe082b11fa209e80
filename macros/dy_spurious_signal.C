/// \file
/// \brief The spurious-signal test from ROOT: choose the background function of each category of a templates file.
///
/// Runs exactly the code of `dyroot spurious` (RooFit fits in dyroot.fit, criteria in
/// dyroot.spurious; the ROOT wheel has no TPython, so the macro starts the dyroot command
/// with the Python interpreter that has dyroot installed), then opens the RooWorkspace it
/// wrote and prints, per category, the chosen background model read back from the file.
/// No fitting logic lives in this macro.
///
/// ~~~{.sh}
/// root -l -b -q 'macros/dy_spurious_signal.C("templates.root")'
/// root -l -b -q 'macros/dy_spurious_signal.C("templates.root", "ggH_125.root", 139, "spurious", "Epoly*,CoreEpoly*", 2, true)'
/// ~~~
///
/// Arguments: templates file; signal (ggH sample(s) separated by spaces, or a JSON
/// configuration; "" for dyroot's default shapes); data luminosity in fb^-1; output
/// directory; functions ("" for the whole catalogue, "Epoly*" for a family); worker
/// processes; overwrite existing outputs; Higgs masses ("LO:HI:STEP" in GeV).
/// The interpreter is $DYROOT_PYTHON, else the python3 of the virtual environment that
/// holds this ROOT wheel, else python3 on the PATH.
/// Returns the exit status of `dyroot spurious` (0 on success, 2 on a dyroot error).
///
/// \author dyroot
/// \date 2026-12

#include <RooAbsPdf.h>
#include <RooWorkspace.h>
#include <TFile.h>
#include <TNamed.h>
#include <TROOT.h>
#include <TString.h>
#include <TSystem.h>

#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace {

// Quote one shell argument (single quotes, embedded quotes escaped).
std::string Quote(const std::string &s)
{
   std::string out = "'";
   for (char c : s)
      out += (c == '\'') ? std::string("'\\''") : std::string(1, c);
   return out + "'";
}

// The first interpreter that imports dyroot.
std::string FindPython()
{
   std::vector<std::string> candidates;
   if (const char *env = gSystem->Getenv("DYROOT_PYTHON"))
      candidates.emplace_back(env);
   candidates.emplace_back(std::string(gROOT->GetBinDir().Data()) + "/../../../../../bin/python3");
   candidates.emplace_back("python3");
   for (const auto &py : candidates) {
      if (gSystem->Exec((Quote(py) + " -c 'import dyroot' >/dev/null 2>&1").c_str()) == 0)
         return py;
   }
   return "";
}

} // namespace

int dy_spurious_signal(const char *templates = "templates.root", const char *signal = "", double lumi = 139.0,
                       const char *output = "spurious", const char *functions = "", int jobs = 2, bool force = false,
                       const char *masses = "120:130:0.5")
{
   // ------------------------------------------------------------------------------------
   // 1. The interpreter that has dyroot.
   const std::string python = FindPython();
   if (python.empty()) {
      std::cerr << "dy_spurious_signal: no Python with dyroot found; set DYROOT_PYTHON=/path/to/venv/bin/python\n";
      return 2;
   }

   // ------------------------------------------------------------------------------------
   // 2. The command line of `dyroot spurious`.
   std::ostringstream cmd;
   cmd << Quote(python) << " -m dyroot spurious " << Quote(templates) << " --lumi " << lumi << " --output "
       << Quote(output) << " --jobs " << jobs << " --masses " << Quote(masses);
   if (signal && *signal) {
      cmd << " --signal";
      std::istringstream words(signal);
      for (std::string w; words >> w;)
         cmd << " " << Quote(w);
   }
   if (functions && *functions)
      cmd << " --functions " << Quote(functions);
   if (force)
      cmd << " --force";
   std::cout << "dy_spurious_signal: " << cmd.str() << std::endl;

   // ------------------------------------------------------------------------------------
   // 3. Run it (the table goes to stderr, a JSON line to stdout).
   const int status = gSystem->Exec(cmd.str().c_str());
   const int rc = status < 0 ? 2 : (status >> 8) & 0xff;
   if (rc != 0) {
      std::cerr << "dy_spurious_signal: dyroot spurious failed (exit " << rc << ")\n";
      return rc;
   }

   // ------------------------------------------------------------------------------------
   // 4. Read the workspace back: the chosen background per category.
   const std::string wsPath = std::string(output) + "/workspace.root";
   std::unique_ptr<TFile> f{TFile::Open(wsPath.c_str())};
   if (!f || f->IsZombie()) {
      std::cout << "dy_spurious_signal: no workspace written (no category has a passing function)\n";
      return 0;
   }
   auto *ws = f->Get<RooWorkspace>("dyroot");
   if (!ws) {
      std::cerr << "dy_spurious_signal: " << wsPath << " has no RooWorkspace 'dyroot'\n";
      return 2;
   }
   for (RooAbsArg *arg : ws->allPdfs()) {
      const TString name = arg->GetName();
      if (name.BeginsWith("bkg_"))
         std::cout << "dy_spurious_signal: " << name(4, name.Length() - 4) << " -> " << arg->GetTitle() << "\n";
   }
   return 0;
}
