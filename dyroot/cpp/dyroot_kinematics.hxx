/// \file dyroot_kinematics.hxx
/// \brief Dimuon kinematics, the analysis selection and the categories: the C++ twin of `dyroot/features.py`.
///
/// Header-only, no ROOT dependency. The formulas follow `dyroot.features` line by
/// line (same operations in the same order), so the results agree with the numpy
/// version to rounding; `tests/test_cpp_parity.py` checks it on random inputs.
/// Units: GeV. Collins-Soper angles of the negative muon (arXiv:hep-ph/0004042).
///
/// \author dyroot
/// \date 2026-12

#ifndef DYROOT_KINEMATICS_HXX
#define DYROOT_KINEMATICS_HXX

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace dyroot {

/// Muon mass in GeV (PDG 2024), as `dyroot.features.MUON_MASS`.
constexpr double kMuonMass = 0.1056583755;

/// The variables of an event, in the order of `dyroot.features.EVENT_COLUMNS`
/// (without `category`), plus the derived `max_abs_eta`.
enum EVar : int {
   kMu1Pt, kMu1Eta, kMu1Phi, kMu1Charge, kMu2Pt, kMu2Eta, kMu2Phi, kMu2Charge,
   kMll, kPtll, kYll, kCostheta, kPhiCs, kPhill, kMaxAbsEta, kNVars
};

/// Name of each EVar, as the Python column names.
inline const char *VarName(int v)
{
   static const char *names[kNVars] = {"mu1_pt",   "mu1_eta", "mu1_phi", "mu1_charge", "mu2_pt",
                                       "mu2_eta",  "mu2_phi", "mu2_charge", "mll",     "ptll",
                                       "yll",      "costheta", "phi_cs",  "phill",     "max_abs_eta"};
   return (v >= 0 && v < kNVars) ? names[v] : "?";
}

/// The EVar of a column name; throws std::invalid_argument with the valid names.
inline EVar VarFromName(const std::string &name)
{
   for (int v = 0; v < kNVars; ++v)
      if (name == VarName(v))
         return static_cast<EVar>(v);
   std::string known;
   for (int v = 0; v < kNVars; ++v)
      known += std::string(v ? ", " : "") + VarName(v);
   throw std::invalid_argument("dyroot: unknown event variable '" + name + "' in a category or selection; use one of " +
                               known);
}

/// Both muons of an event; index 0 = leading (mu1), 1 = subleading (mu2).
struct Muons {
   double pt[2], eta[2], phi[2];
   int charge[2];
};

/// The dimuon variables of an event.
struct Dimuon {
   double mll, ptll, yll, costheta, phi_cs, phill;
};

namespace detail {

struct Vec3 {
   double x, y, z;
};

/// Collins-Soper axes in the rest frame reached from the lab by a pure boost (`features._cs_axes`).
inline void CsAxes(double e, double px, double py, double pz, Vec3 &X, Vec3 &Y, Vec3 &Z)
{
   const double bx = px / e, by = py / e, bz = pz / e;
   const double b2 = bx * bx + by * by + bz * bz;
   const double gamma = 1.0 / std::sqrt(1.0 - b2);
   Vec3 units[2];
   for (int s = 0; s < 2; ++s) {
      const double sign = s == 0 ? 1.0 : -1.0;
      const double bp = sign * bz;
      const double k = (gamma - 1.0) * bp / b2 - gamma;
      const double vx = k * bx, vy = k * by, vz = sign + k * bz;
      const double norm = std::sqrt(vx * vx + vy * vy + vz * vz);
      units[s] = {vx / norm, vy / norm, vz / norm};
   }
   const Vec3 &a = units[0], &c = units[1];
   double zx = a.x - c.x, zy = a.y - c.y, zz = a.z - c.z;
   const double zn = std::sqrt(zx * zx + zy * zy + zz * zz);
   zx = zx / zn;
   zy = zy / zn;
   zz = zz / zn;
   double xx = -(a.x + c.x), xy = -(a.y + c.y), xz = -(a.z + c.z);
   const double xn = std::sqrt(xx * xx + xy * xy + xz * xz);
   if (xn < 1e-12) {  // purely longitudinal dimuon: the lab x axis
      xx = 1.0;
      xy = 0.0;
      xz = 0.0;
   } else {
      xx = xx / xn;
      xy = xy / xn;
      xz = xz / xn;
   }
   const double flip = pz < 0 ? -1.0 : 1.0;
   zx = flip * zx;
   zy = flip * zy;
   zz = flip * zz;
   X = {xx, xy, xz};
   Y = {zy * xz - zz * xy, zz * xx - zx * xz, zx * xy - zy * xx};
   Z = {zx, zy, zz};
}

/// Boost the four-vector (e, p) by velocity (bx, by, bz) (`features._boost`).
inline void Boost(double e, double px, double py, double pz, double bx, double by, double bz, double &eo, double &xo,
                  double &yo, double &zo)
{
   const double b2 = bx * bx + by * by + bz * bz;
   const double gamma = 1.0 / std::sqrt(1.0 - b2);
   const double bp = bx * px + by * py + bz * pz;
   const double k = (b2 > 0 ? (gamma - 1.0) * bp / b2 : 0.0) + gamma * e;
   eo = gamma * (e + bp);
   xo = px + k * bx;
   yo = py + k * by;
   zo = pz + k * bz;
}

} // namespace detail

/// Both muons from the dimuon variables: the exact inverse of DimuonFromMuons
/// (`dyroot.features.muons_from_dimuon`). Masses below 2 m_mu are clamped to threshold.
inline Muons MuonsFromDimuon(double mll, double ptll, double yll, double costheta, double phi_cs, double phill,
                             double mass = kMuonMass)
{
   using detail::Vec3;
   mll = mll > 2.0 * mass ? mll : 2.0 * mass;
   const double mt = std::sqrt(mll * mll + ptll * ptll);
   const double e = mt * std::cosh(yll), pz = mt * std::sinh(yll);
   const double px = ptll * std::cos(phill), py = ptll * std::sin(phill);
   Vec3 X, Y, Z;
   detail::CsAxes(e, px, py, pz, X, Y, Z);
   const double pstar = std::sqrt(mll * mll > 4 * mass * mass ? 0.25 * mll * mll - mass * mass : 0.0);
   const double sint = std::sqrt(costheta * costheta < 1 ? 1.0 - costheta * costheta : 0.0);
   const double cx = sint * std::cos(phi_cs), cy = sint * std::sin(phi_cs), cz = costheta;
   const double lx = pstar * (cx * X.x + cy * Y.x + cz * Z.x);
   const double ly = pstar * (cx * X.y + cy * Y.y + cz * Z.y);
   const double lz = pstar * (cx * X.z + cy * Y.z + cz * Z.z);
   const double estar = 0.5 * mll;
   const double bx = px / e, by = py / e, bz = pz / e;
   double pt[2], eta[2], phi[2];  // 0 = negative muon, 1 = positive
   for (int s = 0; s < 2; ++s) {
      const double sign = s == 0 ? 1.0 : -1.0;
      double ee, mx, my, mz;
      detail::Boost(estar, sign * lx, sign * ly, sign * lz, bx, by, bz, ee, mx, my, mz);
      pt[s] = std::sqrt(mx * mx + my * my);
      const double pabs = std::sqrt(mx * mx + my * my + mz * mz);
      eta[s] = 0.5 * std::log((pabs + mz) / (pabs - mz));
      phi[s] = std::atan2(my, mx);
   }
   const bool leadNeg = pt[0] >= pt[1];
   const int l = leadNeg ? 0 : 1, t = 1 - l;
   Muons m;
   m.pt[0] = pt[l];
   m.eta[0] = eta[l];
   m.phi[0] = phi[l];
   m.charge[0] = leadNeg ? -1 : 1;
   m.pt[1] = pt[t];
   m.eta[1] = eta[t];
   m.phi[1] = phi[t];
   m.charge[1] = leadNeg ? 1 : -1;
   return m;
}

/// Dimuon variables from two muons (any order; the charge picks the negative
/// muon for the Collins-Soper angles) (`dyroot.features.dimuon_from_muons`).
inline Dimuon DimuonFromMuons(double pt1, double eta1, double phi1, int q1, double pt2, double eta2, double phi2,
                              int q2, double mass = kMuonMass)
{
   (void)q2;
   auto fourVector = [mass](double pt, double eta, double phi, double &e, double &x, double &y, double &z) {
      x = pt * std::cos(phi);
      y = pt * std::sin(phi);
      z = pt * std::sinh(eta);
      e = std::sqrt(x * x + y * y + z * z + mass * mass);
   };
   double e1, x1, y1, z1, e2, x2, y2, z2;
   fourVector(pt1, eta1, phi1, e1, x1, y1, z1);
   fourVector(pt2, eta2, phi2, e2, x2, y2, z2);
   const double e = e1 + e2, px = x1 + x2, py = y1 + y2, pz = z1 + z2;
   const double m2 = e * e - px * px - py * py - pz * pz;
   Dimuon d;
   d.mll = std::sqrt(m2 > 0 ? m2 : 0.0);
   d.ptll = std::sqrt(px * px + py * py);
   d.yll = 0.5 * std::log((e + pz) / (e - pz));
   const bool neg = q1 < 0;
   double le, lx, ly, lz;
   detail::Boost(neg ? e1 : e2, neg ? x1 : x2, neg ? y1 : y2, neg ? z1 : z2, -px / e, -py / e, -pz / e, le, lx, ly, lz);
   detail::Vec3 X, Y, Z;
   detail::CsAxes(e, px, py, pz, X, Y, Z);
   const double p = std::sqrt(lx * lx + ly * ly + lz * lz);
   d.costheta = (lx * Z.x + ly * Z.y + lz * Z.z) / p;
   d.phi_cs = std::atan2(lx * Y.x + ly * Y.y + lz * Y.z, lx * X.x + ly * X.y + lz * X.z);
   d.phill = std::atan2(py, px);
   return d;
}

/// All variables of one event, indexed by EVar.
struct EventVars {
   double v[kNVars];
   double operator[](int i) const { return v[i]; }
};

/// Fill an EventVars from the dimuon variables and the muons.
inline EventVars MakeEventVars(const Dimuon &d, const Muons &m)
{
   EventVars ev;
   ev.v[kMu1Pt] = m.pt[0];
   ev.v[kMu1Eta] = m.eta[0];
   ev.v[kMu1Phi] = m.phi[0];
   ev.v[kMu1Charge] = m.charge[0];
   ev.v[kMu2Pt] = m.pt[1];
   ev.v[kMu2Eta] = m.eta[1];
   ev.v[kMu2Phi] = m.phi[1];
   ev.v[kMu2Charge] = m.charge[1];
   ev.v[kMll] = d.mll;
   ev.v[kPtll] = d.ptll;
   ev.v[kYll] = d.yll;
   ev.v[kCostheta] = d.costheta;
   ev.v[kPhiCs] = d.phi_cs;
   ev.v[kPhill] = d.phill;
   ev.v[kMaxAbsEta] = std::max(std::abs(m.eta[0]), std::abs(m.eta[1]));
   return ev;
}

/// The analysis selection (`dyroot.features.Selection`), applied after generation.
struct Selection {
   double leadPt = 27.0;        ///< leading-muon pT threshold, GeV
   double subleadPt = 15.0;     ///< subleading-muon pT threshold, GeV
   double maxAbsEta = 2.7;      ///< both muons below this |eta|
   bool oppositeCharge = true;  ///< require opposite charges
   bool hasMllRange = true;     ///< apply the fit range
   double mllLo = 110.0;        ///< fit range, GeV (lo <= mll < hi)
   double mllHi = 160.0;

   bool Pass(double mu1Pt, double mu1Eta, int mu1Charge, double mu2Pt, double mu2Eta, int mu2Charge, double mll) const
   {
      bool ok = (mu1Pt > leadPt) & (mu2Pt > subleadPt);
      ok = ok & (std::abs(mu1Eta) < maxAbsEta) & (std::abs(mu2Eta) < maxAbsEta);
      if (oppositeCharge)
         ok = ok & (mu1Charge * mu2Charge < 0);
      if (hasMllRange)
         ok = ok & (mll >= mllLo) & (mll < mllHi);
      return ok;
   }
   bool Pass(const EventVars &e) const
   {
      return Pass(e[kMu1Pt], e[kMu1Eta], static_cast<int>(e[kMu1Charge]), e[kMu2Pt], e[kMu2Eta],
                  static_cast<int>(e[kMu2Charge]), e[kMll]);
   }
};

/// One cut of a category: lo <= var < hi; an open edge has no bound (no
/// infinities, so the code stays correct under -ffast-math).
struct RangeCut {
   EVar var;
   bool hasLo;
   double lo;
   bool hasHi;
   double hi;
};

/// One category (`dyroot.features.Category`): a box in event variables.
struct Category {
   std::string name;
   std::vector<RangeCut> cuts;

   bool Contains(const EventVars &e) const
   {
      for (const auto &c : cuts) {
         const double v = e[c.var];
         if ((c.hasLo && !(v >= c.lo)) || (c.hasHi && !(v < c.hi)))
            return false;
      }
      return true;
   }
};

/// An ordered list of disjoint categories (`dyroot.features.CategoryScheme`): the
/// category of an event is the index of the first that contains it, or -1.
struct CategoryScheme {
   std::vector<Category> categories;

   int Assign(const EventVars &e) const
   {
      for (std::size_t i = 0; i < categories.size(); ++i)
         if (categories[i].Contains(e))
            return static_cast<int>(i);
      return -1;
   }
   std::size_t size() const { return categories.size(); }
   std::vector<std::string> Names() const
   {
      std::vector<std::string> out;
      for (const auto &c : categories)
         out.push_back(c.name);
      return out;
   }
};

/// The default scheme (`dyroot.features.DEFAULT_CATEGORIES`): central (both |eta| < 1)
/// or not, times pT_mumu < 15, 15-50, > 50 GeV.
inline CategoryScheme DefaultCategories()
{
   CategoryScheme s;
   const char *regions[2] = {"central", "noncentral"};
   const char *labels[3] = {"lowpt", "midpt", "highpt"};
   const double etaEdges[3] = {0.0, 1.0, -1.0};  // -1: open
   const double ptEdges[4] = {0.0, 15.0, 50.0, -1.0};
   for (int r = 0; r < 2; ++r)
      for (int p = 0; p < 3; ++p) {
         Category c;
         c.name = std::string(regions[r]) + "_" + labels[p];
         c.cuts.push_back({kMaxAbsEta, true, etaEdges[r], etaEdges[r + 1] >= 0, etaEdges[r + 1] >= 0 ? etaEdges[r + 1] : 0.0});
         c.cuts.push_back({kPtll, true, ptEdges[p], ptEdges[p + 1] >= 0, ptEdges[p + 1] >= 0 ? ptEdges[p + 1] : 0.0});
         s.categories.push_back(c);
      }
   return s;
}

} // namespace dyroot

#endif // DYROOT_KINEMATICS_HXX
