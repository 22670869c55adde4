/* dicom_map_writer.cpp - attribution maps out as DICOM (include/cbctiq/dicom_write.h):
 * a Parametric Map through DCMTK's dcmpmap/dcmfg/dcmiod, a Secondary Capture
 * RGB series through dcmdata, both on the slices of a DICOM series that lies
 * on the volume's grid.
 *
 * Reads only the headers of that series (pixel values are not loaded): the
 * slices' positions, the UIDs it references, and the patient, study and
 * frame-of-reference attributes it copies. Not here: reading images
 * (dicom_adapter.cpp), drawing the RGB overlays (src/draw).
 * Every entry point catches all exceptions and returns a cbq status.
 */
#include "cbctiq/dicom_write.h"
#include "cbctiq/atomic_file.h"
#include "cbctiq/dicom.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcvrda.h>
#include <dcmtk/dcmdata/dcvrtm.h>
#include <dcmtk/dcmfg/fgderimg.h>
#include <dcmtk/dcmfg/fgfracon.h>
#include <dcmtk/dcmfg/fgframeanatomy.h>
#include <dcmtk/dcmfg/fgparametricmapframetype.h>
#include <dcmtk/dcmfg/fgpixeltransform.h>
#include <dcmtk/dcmfg/fgpixmsr.h>
#include <dcmtk/dcmfg/fgplanor.h>
#include <dcmtk/dcmfg/fgplanpo.h>
#include <dcmtk/dcmfg/fgrealworldvaluemapping.h>
#include <dcmtk/dcmiod/iodreferences.h>
#include <dcmtk/dcmiod/modfloatingpointimagepixel.h>
#include <dcmtk/dcmpmap/dpmparametricmapiod.h>
#include <dcmtk/oflog/oflog.h>

#include "dicom_item.h"

#ifndef CBQ_VERSION
#define CBQ_VERSION "unknown"
#endif

namespace fs = std::filesystem;

namespace {

/* Code meanings and private codes of the objects: one place. */
const char *const PRIVATE_SCHEME = "99CBCTIQ";
const char *const SC_SOP_CLASS = UID_SecondaryCaptureImageStorage;
const double GRID_TOL_VOXELS = 0.01; /* a slice pixel must sit on a voxel centre within this */

struct SourceSlice {
    std::string path;
    std::shared_ptr<DcmFileFormat> file; /* header; pixel values not loaded */
    std::string sop_class, sop_instance, ipp_text, iop_text, spacing_text, thickness_text;
    double ipp[3] = {0, 0, 0}, iop[6] = {0, 0, 0, 0, 0, 0}, spacing[2] = {0, 0};
    unsigned rows = 0, cols = 0;
    double along = 0;
    long long base = 0, step_col = 0, step_row = 0; /* flat voxel index of pixel (r, c) */
    long slice_index = 0;
};

using cbq_dicom::get_doubles;
using cbq_dicom::get_str;

std::string new_uid(const char *root)
{
    char buf[100];
    dcmGenerateUniqueIdentifier(buf, root);
    return buf;
}

/* dcmiod/dcmfg log their checks at WARN and ERROR; the status codes and our
 * own messages say what went wrong, so nothing of theirs goes to stderr. */
void quiet_dcmtk()
{
    static std::once_flag once;
    std::call_once(once, [] {
        for (const char *name : {"dcmtk.dcmiod", "dcmtk.dcmfg", "dcmtk.dcmpmap"})
            OFLog::getLogger(name).setLogLevel(dcmtk::log4cplus::OFF_LOG_LEVEL);
    });
}

} // namespace

struct cbq_dicom_grid {
    std::string series_path, series_uid, folder;
    std::vector<SourceSlice> slices;
    size_t rows = 0, cols = 0;
    size_t nvox = 0;
    double slice_spacing = 0;
};

namespace {

int pick_uid(std::string &uid, const char *path, const char *series_uid, cbq_error *err)
{
    if (series_uid && *series_uid) {
        uid = series_uid;
        return CBQ_OK;
    }
    cbq_dicom_series_info *series = nullptr;
    size_t n = 0;
    CBQ_TRY(cbq_dicom_find_series(&series, &n, path, err));
    std::unique_ptr<cbq_dicom_series_info, void (*)(void *)> hold(series, std::free);
    if (n == 0)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: no DICOM image series found", path);
    std::error_code ec;
    if (n > 1 && fs::is_directory(path, ec))
        return CBQ_FAIL(err, CBQ_ERR_ARG,
                        "%s: %zu image series found; a DICOM map needs exactly one series on the "
                        "volume's grid (point at one file of the series to choose it)", path, n);
    if (n > 1) {
        DcmFileFormat ff;
        if (ff.loadFile(path, EXS_Unknown, EGL_noChange, 256).bad())
            return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: not a DICOM file", path);
        uid = get_str(ff.getDataset(), DCM_SeriesInstanceUID);
        return CBQ_OK;
    }
    uid = series[0].series_uid;
    return CBQ_OK;
}

int read_slice(SourceSlice &s, const std::string &path, cbq_error *err)
{
    DcmItem *ds = s.file->getDataset();
    s.path = path;
    s.sop_class = get_str(ds, DCM_SOPClassUID);
    s.sop_instance = get_str(ds, DCM_SOPInstanceUID);
    s.ipp_text = get_str(ds, DCM_ImagePositionPatient);
    s.iop_text = get_str(ds, DCM_ImageOrientationPatient);
    s.spacing_text = get_str(ds, DCM_PixelSpacing);
    s.thickness_text = get_str(ds, DCM_SliceThickness);
    Uint16 rows = 0, cols = 0;
    ds->findAndGetUint16(DCM_Rows, rows);
    ds->findAndGetUint16(DCM_Columns, cols);
    s.rows = rows;
    s.cols = cols;
    const char *missing = s.sop_instance.empty()                             ? "SOPInstanceUID"
                          : s.sop_class.empty()                              ? "SOPClassUID"
                          : !get_doubles(ds, DCM_ImagePositionPatient, s.ipp, 3)    ? "ImagePositionPatient"
                          : !get_doubles(ds, DCM_ImageOrientationPatient, s.iop, 6) ? "ImageOrientationPatient"
                          : !get_doubles(ds, DCM_PixelSpacing, s.spacing, 2)        ? "PixelSpacing"
                          : rows == 0 || cols == 0                                  ? "Rows/Columns"
                                                                                    : nullptr;
    if (missing)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: %s missing or not a number: a DICOM map needs "
                        "it to place its frame", path.c_str(), missing);
    const double *r = s.iop, *c = s.iop + 3;
    double normal[3] = {r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]};
    s.along = s.ipp[0] * normal[0] + s.ipp[1] * normal[1] + s.ipp[2] * normal[2];
    return CBQ_OK;
}

/* Every slice of series `uid` under the folder, headers only. */
int scan_series(cbq_dicom_grid &g, cbq_error *err)
{
    std::error_code ec;
    g.folder = fs::is_directory(g.series_path, ec) ? g.series_path
                                                    : fs::path(g.series_path).parent_path().string();
    if (g.folder.empty())
        g.folder = ".";
    std::vector<std::string> files;
    fs::recursive_directory_iterator it(g.folder, fs::directory_options::skip_permission_denied, ec);
    for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
        if (it->is_regular_file(ec))
            files.push_back(it->path().string());
    if (ec)
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot list folder: %s", g.folder.c_str(),
                        ec.message().c_str());
    std::sort(files.begin(), files.end());
    for (const std::string &f : files) {
        auto ff = std::make_shared<DcmFileFormat>();
        /* 256: longer values (pixel data) stay on disk */
        if (ff->loadFile(f.c_str(), EXS_Unknown, EGL_noChange, 256).bad())
            continue;
        DcmDataset *ds = ff->getDataset();
        if (get_str(ds, DCM_SeriesInstanceUID) != g.series_uid || !ds->tagExists(DCM_PixelData))
            continue;
        SourceSlice s;
        s.file = ff;
        CBQ_TRY(read_slice(s, f, err));
        g.slices.push_back(std::move(s));
    }
    if (g.slices.empty())
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: no image of series %s found", g.folder.c_str(),
                        g.series_uid.c_str());
    std::sort(g.slices.begin(), g.slices.end(),
              [](const SourceSlice &a, const SourceSlice &b) { return a.along < b.along; });
    return CBQ_OK;
}

/* Inverse of the affine's 3x3 part; false when singular. */
bool invert3(const double a[4][4], double inv[3][3])
{
    double det = a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) -
                 a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) +
                 a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
    if (!(std::fabs(det) > 0))
        return false;
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++) {
            int r1 = (c + 1) % 3, r2 = (c + 2) % 3, c1 = (r + 1) % 3, c2 = (r + 2) % 3;
            inv[r][c] = (a[r1][c1] * a[r2][c2] - a[r1][c2] * a[r2][c1]) / det;
        }
    return true;
}

/* LPS (DICOM) point or direction -> voxel coordinates of the grid. */
void lps_to_voxel(const double inv[3][3], const double aff[4][4], const double lps[3], bool point,
                  double out[3])
{
    double ras[3] = {-lps[0], -lps[1], lps[2]};
    if (point)
        for (int i = 0; i < 3; i++)
            ras[i] -= aff[i][3];
    for (int i = 0; i < 3; i++)
        out[i] = inv[i][0] * ras[0] + inv[i][1] * ras[1] + inv[i][2] * ras[2];
}

/* The axis (0..2) of a unit step and its sign, or -1 when the step is not
 * one voxel along one axis. */
int unit_axis(const double d[3], int *sign)
{
    for (int a = 0; a < 3; a++) {
        int b = (a + 1) % 3, c = (a + 2) % 3;
        if (std::fabs(std::fabs(d[a]) - 1) < GRID_TOL_VOXELS && std::fabs(d[b]) < GRID_TOL_VOXELS &&
            std::fabs(d[c]) < GRID_TOL_VOXELS) {
            *sign = d[a] > 0 ? 1 : -1;
            return a;
        }
    }
    return -1;
}

bool near_int(double v, long *out)
{
    *out = std::lround(v);
    return std::fabs(v - (double)*out) <= GRID_TOL_VOXELS;
}

int match_slice(SourceSlice &s, const cbq_volume *vol, const double inv[3][3], cbq_error *err)
{
    const size_t n[3] = {vol->nx, vol->ny, vol->nz};
    const long long stride[3] = {1, (long long)vol->nx, (long long)(vol->nx * vol->ny)};
    double along_row[3], along_col[3], v0[3], dcol[3], drow[3];
    for (int i = 0; i < 3; i++) {
        along_row[i] = s.iop[i] * s.spacing[1];     /* one column to the right */
        along_col[i] = s.iop[3 + i] * s.spacing[0]; /* one row down */
    }
    lps_to_voxel(inv, vol->affine, s.ipp, true, v0);
    lps_to_voxel(inv, vol->affine, along_row, false, dcol);
    lps_to_voxel(inv, vol->affine, along_col, false, drow);
    int sc = 0, sr = 0, ac = unit_axis(dcol, &sc), ar = unit_axis(drow, &sr);
    if (ac < 0 || ar < 0 || ac == ar)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: its rows and columns (ImageOrientationPatient %s, "
                        "PixelSpacing %s) do not run along the volume's voxel axes: not the volume's grid",
                        s.path.c_str(), s.iop_text.c_str(), s.spacing_text.c_str());
    int as = 3 - ac - ar;
    long idx[3];
    for (int i = 0; i < 3; i++)
        if (!near_int(v0[i], &idx[i]))
            return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: its first pixel (ImagePositionPatient %s) lies at "
                            "voxel (%.3f, %.3f, %.3f) of the volume, not on a voxel centre: not the "
                            "volume's grid", s.path.c_str(), s.ipp_text.c_str(), v0[0], v0[1], v0[2]);
    long first_c = idx[ac], last_c = idx[ac] + sc * (long)(s.cols - 1);
    long first_r = idx[ar], last_r = idx[ar] + sr * (long)(s.rows - 1);
    if (s.cols != n[ac] || s.rows != n[ar] || std::min(first_c, last_c) != 0 ||
        std::min(first_r, last_r) != 0 || idx[as] < 0 || idx[as] >= (long)n[as])
        return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: its %u x %u pixels at voxel (%ld, %ld, %ld) do not "
                        "cover a slice of the volume's %zu x %zu x %zu grid", s.path.c_str(), s.rows,
                        s.cols, idx[0], idx[1], idx[2], n[0], n[1], n[2]);
    s.base = idx[0] * stride[0] + idx[1] * stride[1] + idx[2] * stride[2];
    s.step_col = sc * stride[ac];
    s.step_row = sr * stride[ar];
    s.slice_index = idx[as] + 1000000L * as; /* the axis is part of the identity */
    return CBQ_OK;
}

int match_grid(cbq_dicom_grid &g, const cbq_volume *vol, cbq_error *err)
{
    double inv[3][3];
    if (!invert3(vol->affine, inv))
        return CBQ_FAIL(err, CBQ_ERR_ARG, "the volume's affine is singular");
    std::vector<long> seen;
    for (SourceSlice &s : g.slices) {
        CBQ_TRY(match_slice(s, vol, inv, err));
        if (std::find(seen.begin(), seen.end(), s.slice_index) != seen.end())
            return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: a second slice at the same position of the volume's "
                            "grid (ImagePositionPatient %s)", s.path.c_str(), s.ipp_text.c_str());
        seen.push_back(s.slice_index);
    }
    const SourceSlice &f = g.slices.front();
    g.rows = f.rows;
    g.cols = f.cols;
    g.nvox = cbq_volume_count(vol);
    if (g.slices.size() * g.rows * g.cols != g.nvox)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: series %s has %zu slices of %zu x %zu; the volume's grid "
                        "is %zu x %zu x %zu: the series does not cover it", g.folder.c_str(),
                        g.series_uid.c_str(), g.slices.size(), g.rows, g.cols, vol->nx, vol->ny,
                        vol->nz);
    if (g.slices.size() > 1)
        g.slice_spacing = (g.slices.back().along - f.along) / (double)(g.slices.size() - 1);
    return CBQ_OK;
}

/* ---- output folder ------------------------------------------------------ */

/* A temporary sibling folder of `dir` (atomic_file.h: a signal removes it
 * too), removed unless committed. */
struct TmpDir {
    char path[4200] = "";
    std::string final_path;
    bool committed = false;
    ~TmpDir()
    {
        if (!committed && path[0])
            cbq_atomic_discard_dir(path);
    }
};

/* What these writers put in a folder: map.dcm, sc_NNNN.dcm. */
bool is_our_file(const std::string &name)
{
    return name == "map.dcm" || (name.size() == 11 && name.compare(0, 3, "sc_") == 0 &&
                                 name.compare(7, 4, ".dcm") == 0 &&
                                 std::all_of(name.begin() + 3, name.begin() + 7, ::isdigit));
}

/* An existing `dir` is replaced at the end only when it holds nothing but
 * an earlier map: never a folder of the user's own files. */
int check_replaceable(const fs::path &dir, cbq_error *err)
{
    std::error_code ec;
    if (!fs::exists(dir, ec))
        return CBQ_OK;
    if (!fs::is_directory(dir, ec))
        return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: exists and is not a folder; a DICOM map is a folder",
                        dir.c_str());
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
        if (!it->is_regular_file(ec) || !is_our_file(it->path().filename().string()))
            return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: the folder exists and holds %s, not a DICOM map of "
                            "cbctiq's; give a new or empty folder", dir.c_str(),
                            it->path().filename().c_str());
    return ec ? CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot list: %s", dir.c_str(), ec.message().c_str())
              : CBQ_OK;
}

int tmp_dir_create(TmpDir &t, const char *dir, cbq_error *err)
{
    std::error_code ec;
    fs::path final_path = fs::path(dir).lexically_normal();
    if (final_path.filename().empty())
        final_path = final_path.parent_path();
    CBQ_TRY(check_replaceable(final_path, err));
    fs::path parent = final_path.parent_path();
    if (!parent.empty() && !fs::is_directory(parent, ec))
        fs::create_directories(parent, ec);
    if (ec)
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot create folder: %s", parent.c_str(),
                        ec.message().c_str());
    t.final_path = final_path.string();
    return cbq_atomic_tmp_dir(t.path, sizeof t.path, t.final_path.c_str(), err);
}

/* Moves the finished folder onto its name; an earlier map there goes only now. */
int tmp_dir_commit(TmpDir &t, cbq_error *err)
{
    t.committed = true; /* rename_dir discards the temporary folder itself on failure */
    return cbq_atomic_rename_dir(t.path, t.final_path.c_str(), err);
}

int check_cond(const OFCondition &c, const char *what, const char *dir, cbq_error *err)
{
    if (c.good())
        return CBQ_OK;
    return CBQ_FAIL(err, CBQ_ERR_INTERNAL, "%s: DCMTK refused the %s: %s", dir, what, c.text());
}

std::string text_or(const char *s, const char *fallback) { return s && *s ? s : fallback; }

std::string describe(const cbq_dicom_map_label *label)
{
    std::string d = text_or(label->method, "attribution") + " " + text_or(label->category, "map");
    if (label->target_layer && *label->target_layer)
        d += std::string(" at ") + label->target_layer;
    return d;
}

/* DICOM string values have lengths; our names are short but need not be. */
std::string clip(const std::string &s, size_t n) { return s.size() <= n ? s : s.substr(0, n); }

/* ---- Parametric Map ------------------------------------------------------- */

FGRealWorldValueMapping::RWVMItem *value_mapping(const cbq_dicom_map_label *label, double lo, double hi)
{
    auto *item = new FGRealWorldValueMapping::RWVMItem();
    std::string method = text_or(label->method, "attribution");
    std::string units = text_or(label->units, "raw attribution (map units)");
    item->setRealWorldValueSlope(1.0);
    item->setRealWorldValueIntercept(0.0);
    item->setDoubleFloatRealWorldValueFirstValueMapped(lo);
    item->setDoubleFloatRealWorldValueLastValueMapped(hi);
    item->setLUTExplanation(clip(describe(label) + ", " + units, 64).c_str());
    std::string lut_label = method;
    std::transform(lut_label.begin(), lut_label.end(), lut_label.begin(), ::toupper);
    item->setLUTLabel(clip(lut_label, 16).c_str());
    /* UCUM's unity with an annotation: the map's values have no physical unit */
    item->getMeasurementUnitsCode().set("{attribution}", "UCUM", clip(units, 64).c_str());
    auto *quantity = new ContentItemMacro;
    quantity->setValueType(ContentItemMacro::VT_CODE);
    quantity->getEntireConceptNameCodeSequence().push_back(
        new CodeSequenceMacro("246205007", "SCT", "Quantity"));
    quantity->getEntireConceptCodeSequence().push_back(new CodeSequenceMacro(
        clip("AE-" + text_or(label->category, "map"), 16).c_str(), PRIVATE_SCHEME,
        clip("attribution of " + text_or(label->category, "the output"), 64).c_str()));
    item->getEntireQuantityDefinitionSequence().push_back(quantity);
    auto *how = new ContentItemMacro;
    how->setValueType(ContentItemMacro::VT_CODE);
    how->getEntireConceptNameCodeSequence().push_back(
        new CodeSequenceMacro("370129005", "SCT", "Measurement Method"));
    how->getEntireConceptCodeSequence().push_back(
        new CodeSequenceMacro(clip(method, 16).c_str(), PRIVATE_SCHEME, clip(describe(label), 64).c_str()));
    item->getEntireQuantityDefinitionSequence().push_back(how);
    return item;
}

int add_shared_groups(DPMParametricMapIOD &pm, const cbq_dicom_grid &g, const cbq_dicom_map_label *label,
                      double lo, double hi, const char *dir, cbq_error *err)
{
    const SourceSlice &f = g.slices.front();
    FGPixelMeasures measures;
    measures.setPixelSpacing(f.spacing_text.c_str());
    char spacing[32];
    std::snprintf(spacing, sizeof spacing, "%.6g", g.slice_spacing > 0 ? g.slice_spacing : 1.0);
    measures.setSliceThickness(f.thickness_text.empty() ? spacing : f.thickness_text.c_str());
    measures.setSpacingBetweenSlices(spacing);
    CBQ_TRY(check_cond(pm.addForAllFrames(measures), "pixel measures", dir, err));
    std::vector<std::string> o;
    for (int i = 0; i < 6; i++) {
        char v[32];
        std::snprintf(v, sizeof v, "%.9g", f.iop[i]);
        o.push_back(v);
    }
    std::unique_ptr<FGPlaneOrientationPatient> orient(
        FGPlaneOrientationPatient::createMinimal(o[0].c_str(), o[1].c_str(), o[2].c_str(),
                                                 o[3].c_str(), o[4].c_str(), o[5].c_str()));
    CBQ_TRY(check_cond(pm.addForAllFrames(*orient), "plane orientation", dir, err));
    FGFrameAnatomy anatomy;
    anatomy.setLaterality(FGFrameAnatomy::LATERALITY_UNPAIRED);
    anatomy.getAnatomy().getAnatomicRegion().set("774007", "SCT", "Head and Neck");
    CBQ_TRY(check_cond(pm.addForAllFrames(anatomy), "frame anatomy", dir, err));
    FGPixelValueTransformation identity; /* slope 1, intercept 0: the frames hold the values */
    identity.setFGType(FGPixelValueTransformation::E_PixelValTrans_Identity);
    CBQ_TRY(check_cond(pm.addForAllFrames(identity), "pixel value transformation", dir, err));
    FGParametricMapFrameType frame_type;
    frame_type.setFrameType("DERIVED\\PRIMARY\\VOLUME\\NONE");
    CBQ_TRY(check_cond(pm.addForAllFrames(frame_type), "frame type", dir, err));
    FGRealWorldValueMapping rwvm;
    rwvm.getRealWorldValueMapping().push_back(value_mapping(label, lo, hi));
    return check_cond(pm.addForAllFrames(rwvm), "real world value mapping", dir, err);
}

int add_frames(DPMParametricMapIOD &pm, const cbq_dicom_grid &g, const cbq_volume *map,
               const cbq_dicom_map_label *label, const char *dir, cbq_error *err)
{
    DPMParametricMapIOD::FramesType frames = pm.getFrames();
    auto *floats = OFget<DPMParametricMapIOD::Frames<Float32>>(&frames);
    if (!floats)
        return CBQ_FAIL(err, CBQ_ERR_INTERNAL, "%s: the Parametric Map has no float frames", dir);
    std::vector<Float32> pixels(g.rows * g.cols);
    CodeSequenceMacro derivation(clip(text_or(label->method, "attribution"), 16).c_str(), PRIVATE_SCHEME,
                                 "Attribution map");
    CodeSequenceMacro purpose("121322", "DCM", "Source image for image processing operation");
    for (size_t i = 0; i < g.slices.size(); i++) {
        const SourceSlice &s = g.slices[i];
        cbq_dicom_grid_frame(&g, map, i, pixels.data());
        std::vector<std::string> p;
        for (int a = 0; a < 3; a++) {
            char v[32];
            std::snprintf(v, sizeof v, "%.9g", s.ipp[a]);
            p.push_back(v);
        }
        std::unique_ptr<FGPlanePosPatient> pos(
            FGPlanePosPatient::createMinimal(p[0].c_str(), p[1].c_str(), p[2].c_str()));
        FGFrameContent content;
        content.setDimensionIndexValues(OFstatic_cast(Uint32, i + 1), 0);
        FGDerivationImage deriv;
        DerivationImageItem *item = nullptr;
        CBQ_TRY(check_cond(deriv.addDerivationImageItem(derivation, describe(label).c_str(), item),
                           "derivation image", dir, err));
        SourceImageItem *src = nullptr;
        CBQ_TRY(check_cond(item->addSourceImageItem(s.file->getDataset(), purpose, src),
                           "source image reference", dir, err));
        OFVector<FGBase *> groups;
        groups.push_back(pos.get());
        groups.push_back(&content);
        groups.push_back(&deriv);
        CBQ_TRY(check_cond(floats->addFrame(pixels.data(), pixels.size(), groups), "frame", dir, err));
    }
    return CBQ_OK;
}

void value_range(const cbq_volume *map, double *lo, double *hi)
{
    size_t n = cbq_volume_count(map);
    *lo = 0;
    *hi = 0;
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        double v = map->data[i];
        if (!std::isfinite(v))
            continue;
        if (first || v < *lo)
            *lo = v;
        if (first || v > *hi)
            *hi = v;
        first = false;
    }
}

int put(DcmItem *ds, const DcmTagKey &tag, const std::string &value, const char *dir, cbq_error *err)
{
    return check_cond(ds->putAndInsertString(tag, value.c_str()), DcmTag(tag).getTagName(), dir, err);
}

/* The private coding scheme of the method and quantity codes, named in the
 * SOP Common module as the standard asks of a scheme that starts with 99. */
int declare_private_codes(DcmItem *ds, const char *dir, cbq_error *err)
{
    DcmItem *item = nullptr;
    CBQ_TRY(check_cond(ds->findOrCreateSequenceItem(DCM_CodingSchemeIdentificationSequence, item, 0),
                       "CodingSchemeIdentificationSequence", dir, err));
    CBQ_TRY(put(item, DCM_CodingSchemeDesignator, PRIVATE_SCHEME, dir, err));
    CBQ_TRY(put(item, DCM_CodingSchemeName, "cbctiq attribution methods and quantities", dir, err));
    return put(item, DCM_CodingSchemeResponsibleOrganization, "cbctiq", dir, err);
}

void set_dates(std::string &date, std::string &time)
{
    OFString d, t;
    DcmDate::getCurrentDate(d);
    DcmTime::getCurrentTime(t);
    date = d.c_str();
    time = t.c_str();
}

int write_parametric_map(const char *dir, const cbq_dicom_grid &g, const cbq_volume *map,
                         const cbq_dicom_map_label *label, cbq_error *err)
{
    DcmItem *src = g.slices.front().file->getDataset();
    std::string modality = get_str(src, DCM_Modality);
    IODEnhGeneralEquipmentModule::EquipmentInfo equipment("cbctiq", "cbctiq", "0", CBQ_VERSION);
    ContentIdentificationMacro content("1", "ATTRIBUTION_MAP", clip(describe(label), 64).c_str(), "cbctiq^");
    OFvariant<OFCondition, DPMParametricMapIOD> made = DPMParametricMapIOD::create<IODFloatingPointImagePixelModule>(
        modality.empty() ? "OT" : modality.c_str(), "900", "1", OFstatic_cast(Uint16, g.rows),
        OFstatic_cast(Uint16, g.cols), equipment, content, "VOLUME", "NONE", DPMTypes::CQ_RESEARCH);
    if (OFCondition *bad = OFget<OFCondition>(&made))
        return check_cond(*bad, "Parametric Map", dir, err);
    DPMParametricMapIOD &pm = *OFget<DPMParametricMapIOD>(&made);
    CBQ_TRY(check_cond(pm.importHierarchy(*src, OFTrue, OFTrue, OFTrue, OFFalse), "source's patient and study",
                       dir, err));
    /* the import takes the scanner's equipment too; this object comes from cbctiq */
    pm.getIODEnhGeneralEquipmentModule().set(equipment);
    pm.getSeries().setSeriesInstanceUID(new_uid(SITE_SERIES_UID_ROOT).c_str());
    pm.getSeries().setSeriesDescription(clip("cbctiq " + describe(label), 64).c_str());
    pm.getSOPCommon().setSOPInstanceUID(new_uid(SITE_INSTANCE_UID_ROOT).c_str());
    std::string date, time;
    set_dates(date, time);
    pm.getGeneralImage().setContentDate(date.c_str());
    pm.getGeneralImage().setContentTime(time.c_str());
    pm.getSeries().setSeriesDate(date.c_str());
    pm.getSeries().setSeriesTime(time.c_str());
    CBQ_TRY(check_cond(pm.getIODMultiframeDimensionModule().addDimensionIndex(
                           DCM_ImagePositionPatient, new_uid(SITE_INSTANCE_UID_ROOT).c_str(),
                           DCM_PlanePositionSequence, "ImagePositionPatient"),
                       "dimension index", dir, err));
    double lo, hi;
    value_range(map, &lo, &hi);
    CBQ_TRY(add_shared_groups(pm, g, label, lo, hi, dir, err));
    CBQ_TRY(add_frames(pm, g, map, label, dir, err));
    IODReferences refs;
    for (const SourceSlice &s : g.slices)
        refs.add(new IODImageReference(get_str(src, DCM_PatientID).c_str(), get_str(src, DCM_StudyInstanceUID).c_str(),
                                       g.series_uid.c_str(), s.sop_instance.c_str(), s.sop_class.c_str()));
    pm.getIODCommonInstanceReferenceModule().addReferences(refs, get_str(src, DCM_StudyInstanceUID).c_str());
    DcmFileFormat ff;
    CBQ_TRY(check_cond(pm.writeDataset(*ff.getDataset()), "Parametric Map", dir, err));
    CBQ_TRY(declare_private_codes(ff.getDataset(), dir, err));
    std::string path = std::string(dir) + "/map.dcm";
    return check_cond(ff.saveFile(path.c_str(), EXS_LittleEndianExplicit), "Parametric Map (writing)", dir, err);
}

/* ---- Secondary Capture ------------------------------------------------------ */

/* Patient and study attributes copied from the source. (No frame of
 * reference: the Secondary Capture IOD has none; its images are pictures.) */
const DcmTagKey COPIED[] = {
    DCM_SpecificCharacterSet, DCM_PatientName, DCM_PatientID, DCM_IssuerOfPatientID,
    DCM_PatientBirthDate, DCM_PatientSex, DCM_OtherPatientIDsSequence, DCM_PatientAge,
    DCM_PatientSize, DCM_PatientWeight, DCM_PatientIdentityRemoved, DCM_DeidentificationMethod,
    DCM_StudyInstanceUID, DCM_StudyDate, DCM_StudyTime, DCM_ReferringPhysicianName, DCM_StudyID,
    DCM_AccessionNumber, DCM_StudyDescription};

/* The letters of a direction (LPS), for PatientOrientation: "L", "PH", ... */
std::string orientation_letters(const double *d)
{
    const char pos[3] = {'L', 'P', 'H'}, neg[3] = {'R', 'A', 'F'};
    std::string s;
    int order[3] = {0, 1, 2};
    std::sort(order, order + 3, [d](int a, int b) { return std::fabs(d[a]) > std::fabs(d[b]); });
    for (int a : order)
        if (std::fabs(d[a]) > 1e-3)
            s += d[a] > 0 ? pos[a] : neg[a];
    return s;
}

int sc_header(DcmDataset *ds, const cbq_dicom_grid &g, const SourceSlice &s, size_t i,
              const std::string &series_uid, const std::string &date, const std::string &time,
              const cbq_dicom_map_label *label, const char *dir, cbq_error *err)
{
    DcmItem *src = s.file->getDataset();
    for (const DcmTagKey &tag : COPIED) {
        DcmElement *e = nullptr;
        if (src->findAndGetElement(tag, e).good() && e)
            CBQ_TRY(check_cond(ds->insert(OFstatic_cast(DcmElement *, e->clone()), OFTrue), "copied attribute",
                               dir, err));
    }
    /* the body part tells a checker that Laterality (of paired organs) is not needed */
    std::string body_part = get_str(src, DCM_BodyPartExamined);
    std::string rendering = text_or(label->rendering, "");
    std::string orient = orientation_letters(s.iop) + "\\" + orientation_letters(s.iop + 3);
    const std::pair<DcmTagKey, std::string> values[] = {
        {DCM_SOPClassUID, SC_SOP_CLASS},
        {DCM_SOPInstanceUID, new_uid(SITE_INSTANCE_UID_ROOT)},
        {DCM_SeriesInstanceUID, series_uid},
        {DCM_Modality, "OT"},
        {DCM_SeriesNumber, "901"},
        {DCM_InstanceNumber, std::to_string(i + 1)},
        {DCM_SeriesDescription, clip("cbctiq " + describe(label) + " overlay", 64)},
        {DCM_SeriesDate, date},
        {DCM_SeriesTime, time},
        {DCM_ContentDate, date},
        {DCM_ContentTime, time},
        {DCM_ConversionType, "WSD"},
        {DCM_BodyPartExamined, body_part.empty() ? "HEADNECK" : body_part},
        {DCM_SecondaryCaptureDeviceManufacturer, "cbctiq"},
        {DCM_SecondaryCaptureDeviceManufacturerModelName, "cbctiq"},
        {DCM_SecondaryCaptureDeviceSoftwareVersions, CBQ_VERSION},
        {DCM_ImageType, "DERIVED\\SECONDARY"},
        {DCM_PatientOrientation, orient},
        {DCM_DerivationDescription, clip(describe(label) + " over the CT; " + rendering, 1024)},
        {DCM_ImageComments, clip(rendering, 10240)},
        {DCM_BurnedInAnnotation, "NO"},
        {DCM_LossyImageCompression, "00"},
        {DCM_PhotometricInterpretation, "RGB"},
    };
    for (const auto &v : values)
        CBQ_TRY(put(ds, v.first, v.second, dir, err));
    const std::pair<DcmTagKey, Uint16> numbers[] = {
        {DCM_SamplesPerPixel, 3}, {DCM_PlanarConfiguration, 0}, {DCM_Rows, (Uint16)g.rows},
        {DCM_Columns, (Uint16)g.cols}, {DCM_BitsAllocated, 8}, {DCM_BitsStored, 8},
        {DCM_HighBit, 7}, {DCM_PixelRepresentation, 0}};
    for (const auto &v : numbers)
        CBQ_TRY(check_cond(ds->putAndInsertUint16(v.first, v.second), DcmTag(v.first).getTagName(), dir, err));
    DcmItem *ref = nullptr;
    CBQ_TRY(check_cond(ds->findOrCreateSequenceItem(DCM_SourceImageSequence, ref, 0), "SourceImageSequence",
                       dir, err));
    CBQ_TRY(put(ref, DCM_ReferencedSOPClassUID, s.sop_class, dir, err));
    CBQ_TRY(put(ref, DCM_ReferencedSOPInstanceUID, s.sop_instance, dir, err));
    DcmItem *purpose = nullptr;
    CBQ_TRY(check_cond(ref->findOrCreateSequenceItem(DCM_PurposeOfReferenceCodeSequence, purpose, 0),
                       "PurposeOfReferenceCodeSequence", dir, err));
    CBQ_TRY(put(purpose, DCM_CodeValue, "121322", dir, err));
    CBQ_TRY(put(purpose, DCM_CodingSchemeDesignator, "DCM", dir, err));
    return put(purpose, DCM_CodeMeaning, "Source image for image processing operation", dir, err);
}

int write_secondary_capture(const char *dir, const cbq_dicom_grid &g, const unsigned char *const *rgb,
                            const cbq_dicom_map_label *label, cbq_error *err)
{
    std::string series_uid = new_uid(SITE_SERIES_UID_ROOT), date, time;
    set_dates(date, time);
    for (size_t i = 0; i < g.slices.size(); i++) {
        DcmFileFormat ff;
        DcmDataset *ds = ff.getDataset();
        CBQ_TRY(sc_header(ds, g, g.slices[i], i, series_uid, date, time, label, dir, err));
        CBQ_TRY(check_cond(ds->putAndInsertUint8Array(DCM_PixelData, rgb[i], OFstatic_cast(unsigned long, g.rows * g.cols * 3)),
                           "pixel data", dir, err));
        char name[32];
        std::snprintf(name, sizeof name, "/sc_%04zu.dcm", i + 1);
        std::string path = std::string(dir) + name;
        CBQ_TRY(check_cond(ff.saveFile(path.c_str(), EXS_LittleEndianExplicit), "Secondary Capture (writing)",
                           dir, err));
    }
    return CBQ_OK;
}

template <typename F> int guarded(const char *what, cbq_error *err, F f)
{
    try {
        return f();
    } catch (const std::exception &e) {
        return CBQ_FAIL(err, CBQ_ERR_INTERNAL, "%s: %s", what, e.what());
    } catch (...) {
        return CBQ_FAIL(err, CBQ_ERR_INTERNAL, "%s: unexpected exception", what);
    }
}

} // namespace

extern "C" int cbq_dicom_grid_open(cbq_dicom_grid **out, const char *series_path, const char *series_uid,
                                   const cbq_volume *grid, cbq_error *err)
{
    *out = nullptr;
    return guarded(series_path, err, [&]() -> int {
        quiet_dcmtk();
        auto g = std::make_unique<cbq_dicom_grid>();
        g->series_path = series_path;
        CBQ_TRY(pick_uid(g->series_uid, series_path, series_uid, err));
        CBQ_TRY(scan_series(*g, err));
        int rc = match_grid(*g, grid, err);
        if (rc != CBQ_OK) {
            cbq_error_prefix(err, "DICOM series %s is not on the volume's grid: ", series_path);
            return rc;
        }
        *out = g.release();
        return CBQ_OK;
    });
}

extern "C" void cbq_dicom_grid_free(cbq_dicom_grid *g) { delete g; }

extern "C" size_t cbq_dicom_grid_frames(const cbq_dicom_grid *g, size_t *rows, size_t *cols)
{
    *rows = g->rows;
    *cols = g->cols;
    return g->slices.size();
}

extern "C" void cbq_dicom_grid_frame(const cbq_dicom_grid *g, const cbq_volume *vol, size_t f, float *out)
{
    const SourceSlice &s = g->slices[f];
    for (size_t r = 0; r < g->rows; r++)
        for (size_t c = 0; c < g->cols; c++)
            out[r * g->cols + c] = vol->data[s.base + (long long)r * s.step_row + (long long)c * s.step_col];
}

extern "C" int cbq_dicom_write_parametric_map(const char *dir, const cbq_dicom_grid *g, const cbq_volume *map,
                                              const cbq_dicom_map_label *label, cbq_error *err)
{
    return guarded(dir, err, [&]() -> int {
        if (cbq_volume_count(map) != g->nvox)
            return CBQ_FAIL(err, CBQ_ERR_INTERNAL, "%s: the map is not on the grid the series was matched to", dir);
        TmpDir tmp;
        CBQ_TRY(tmp_dir_create(tmp, dir, err));
        CBQ_TRY(write_parametric_map(tmp.path, *g, map, label, err));
        return tmp_dir_commit(tmp, err);
    });
}

extern "C" int cbq_dicom_write_secondary_capture(const char *dir, const cbq_dicom_grid *g,
                                                 const unsigned char *const *rgb,
                                                 const cbq_dicom_map_label *label, cbq_error *err)
{
    return guarded(dir, err, [&]() -> int {
        TmpDir tmp;
        CBQ_TRY(tmp_dir_create(tmp, dir, err));
        CBQ_TRY(write_secondary_capture(tmp.path, *g, rgb, label, err));
        return tmp_dir_commit(tmp, err);
    });
}
