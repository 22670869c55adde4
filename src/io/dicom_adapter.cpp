/* dicom_adapter.cpp - DCMTK behind include/cbctiq/dicom.h: the reading half
 * of the only C++ in cbctiq (dicom_map_writer.cpp writes).
 *
 * Finds image series in a folder tree (a slice per file, or a frame of an
 * enhanced multi-frame object placed by its functional groups), checks
 * their geometry, decodes pixel data to HU (JPEG 2000 frames through
 * j2k_decode.c), and reads RTSTRUCT contours. Every entry point catches all
 * exceptions and returns a cbq status; no DCMTK type leaks out.
 * Not here: orientation changes (orient.c), rasterising contours (structures.c).
 */
#include "cbctiq/dicom.h"
#include "cbctiq/volume_io.h"
#include "hugepages.h"
#include "j2k_decode.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <system_error>
#include <type_traits>
#include <vector>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dccodec.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcvrds.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/oflog/oflog.h>
#include <dcmtk/oflog/spi/logevent.h>

#include "dicom_item.h"

namespace fs = std::filesystem;

namespace {

/* DCMTK's decoders report damaged data that they still decode (the IJG
 * library's "Corrupt JPEG data: premature end of data segment", an RLE
 * frame shorter than the image) only as log warnings and return success.
 * The log is process-wide, so one appender per decoder logger is attached
 * once; it hands warnings to the thread that is decoding, if that thread is
 * listening (DecoderWarnings below), and drops them otherwise. */
thread_local std::vector<std::string> *decoder_warnings = nullptr;

class WarningCollector : public dcmtk::log4cplus::Appender {
public:
    ~WarningCollector() override { destructorImpl(); }
    void close() override {}

protected:
    void append(const dcmtk::log4cplus::spi::InternalLoggingEvent &event) override
    {
        if (decoder_warnings && event.getLogLevel() >= dcmtk::log4cplus::WARN_LOG_LEVEL)
            decoder_warnings->push_back(event.getMessage().c_str());
    }
};

/* Collects the decoder warnings raised on this thread while it lives. */
struct DecoderWarnings {
    std::vector<std::string> list;
    DecoderWarnings() { decoder_warnings = &list; }
    ~DecoderWarnings() { decoder_warnings = nullptr; }
    DecoderWarnings(const DecoderWarnings &) = delete;
    DecoderWarnings &operator=(const DecoderWarnings &) = delete;
};

/* Codec registration and logging are process-wide in DCMTK; done once.
 * Nothing DCMTK logs reaches stderr: the decoders' loggers feed only the
 * collector, everything else stops below FATAL. */
void dcmtk_init()
{
    static std::once_flag once;
    std::call_once(once, [] {
        OFLog::configure(OFLogger::FATAL_LOG_LEVEL);
        for (const char *name : {"dcmtk.dcmjpeg", "dcmtk.dcmjpls", "dcmtk.dcmdata"}) {
            OFLogger logger = OFLog::getLogger(name);
            logger.setLogLevel(dcmtk::log4cplus::WARN_LOG_LEVEL);
            logger.setAdditivity(false);
            logger.addAppender(dcmtk::log4cplus::SharedAppenderPtr(new WarningCollector));
        }
        DcmRLEDecoderRegistration::registerCodecs();
        DJDecoderRegistration::registerCodecs();
        DJLSDecoderRegistration::registerCodecs();
    });
}

/* One slice: a single-frame file, or one frame of an enhanced multi-frame
 * file (geometry and rescale from its functional groups). */
struct SliceHeader {
    std::string path;
    std::string name;              /* path, or "path frame N" (1-based) in messages */
    long frame = 0;                /* index of the frame in its file */
    bool enhanced = false;         /* placed by the functional groups */
    std::string frame_error;       /* what the functional groups lack, reported when read */
    bool is_float = false;         /* FloatPixelData / DoubleFloatPixelData: values, not cells */
    std::string series_uid;
    double ipp[3] = {0, 0, 0};
    double iop[6] = {0, 0, 0, 0, 0, 0};
    bool has_ipp = false, has_iop = false, has_spacing = false;
    unsigned rows = 0, cols = 0;
    double spacing[2] = {0, 0}; /* PixelSpacing: between rows, between columns */
    double thickness = 0;
    long frames = 1;
    std::string frames_text;       /* NumberOfFrames as written, when present */
    unsigned samples = 1, bits = 0;
    bool encapsulated = false;
    unsigned long pixel_bytes = 0; /* pixel data value length (native data) */
    /* RescaleSlope/Intercept: present or not, as written, and their values
     * once check_slice_headers has parsed them. */
    std::string slope_text, inter_text;
    bool has_slope = false, has_inter = false;
    double slope = 1, inter = 0;
    unsigned long long file_bytes = 0;
    double along = 0; /* position along the slice normal */
};

enum class Kind { not_dicom, no_pixels, image };

void copy_str(char *dst, size_t cap, const std::string &src)
{
    std::snprintf(dst, cap, "%s", src.c_str());
}

using cbq_dicom::get_doubles;
using cbq_dicom::get_str;

DcmItem *seq_item(DcmItem *item, const DcmTagKey &seq, unsigned long i)
{
    DcmItem *out = nullptr;
    if (item->findAndGetSequenceItem(seq, out, (signed long)i).bad())
        return nullptr;
    return out;
}

unsigned long seq_card(DcmItem *item, const DcmTagKey &seq)
{
    DcmSequenceOfItems *s = nullptr;
    if (item->findAndGetSequence(seq, s).bad() || !s)
        return 0;
    return s->card();
}

bool has_dicm_magic(const char *path)
{
    FILE *fp = std::fopen(path, "rb");
    if (!fp)
        return false;
    unsigned char buf[132];
    size_t got = std::fread(buf, 1, sizeof buf, fp);
    std::fclose(fp);
    return got == sizeof buf && std::memcmp(buf + 128, "DICM", 4) == 0;
}

/* Integer pixel data, or the float pixel data of parametric maps. */
const DcmTagKey *pixel_data_tag(DcmItem *ds)
{
    static const DcmTagKey tags[] = {DCM_PixelData, DCM_FloatPixelData, DCM_DoubleFloatPixelData};
    for (const DcmTagKey &t : tags)
        if (ds->tagExists(t))
            return &t;
    return nullptr;
}

/* A file that says it is DICOM but does not parse is an error, not noise:
 * silently dropping it could drop a slice of the series. */
Kind read_header(const std::string &path, SliceHeader &h, DcmFileFormat &ff, std::string *damage)
{
    /* Values longer than 4 KiB (pixel data) stay on disk. */
    OFCondition cond = ff.loadFile(path.c_str(), EXS_Unknown, EGL_noChange, 4096, ERM_autoDetect);
    if (cond.bad()) {
        if (damage && has_dicm_magic(path.c_str()))
            *damage = cond.text();
        return Kind::not_dicom;
    }
    DcmDataset *ds = ff.getDataset();
    h.path = path;
    h.name = path;
    h.series_uid = get_str(ds, DCM_SeriesInstanceUID);
    const DcmTagKey *pixel_tag = pixel_data_tag(ds);
    if (!pixel_tag)
        return Kind::no_pixels;
    h.is_float = *pixel_tag != DCM_PixelData;
    Uint16 u16;
    if (ds->findAndGetUint16(DCM_Rows, u16).good())
        h.rows = u16;
    if (ds->findAndGetUint16(DCM_Columns, u16).good())
        h.cols = u16;
    if (ds->findAndGetUint16(DCM_SamplesPerPixel, u16).good())
        h.samples = u16;
    if (ds->findAndGetUint16(DCM_BitsAllocated, u16).good())
        h.bits = u16;
    h.frames_text = get_str(ds, DCM_NumberOfFrames);
    h.has_slope = ds->tagExists(DCM_RescaleSlope);
    h.has_inter = ds->tagExists(DCM_RescaleIntercept);
    h.slope_text = get_str(ds, DCM_RescaleSlope);
    h.inter_text = get_str(ds, DCM_RescaleIntercept);
    h.encapsulated = DcmXfer(ds->getOriginalXfer()).isEncapsulated();
    DcmElement *px = nullptr;
    if (ds->findAndGetElement(*pixel_tag, px).good() && px)
        h.pixel_bytes = px->getLength();
    std::error_code ec;
    h.file_bytes = fs::file_size(path, ec);
    h.has_ipp = get_doubles(ds, DCM_ImagePositionPatient, h.ipp, 3);
    h.has_iop = get_doubles(ds, DCM_ImageOrientationPatient, h.iop, 6);
    h.has_spacing = get_doubles(ds, DCM_PixelSpacing, h.spacing, 2);
    get_doubles(ds, DCM_SliceThickness, &h.thickness, 1);
    return Kind::image;
}

void fill_info(cbq_dicom_series_info *info, DcmFileFormat &ff, const SliceHeader &h)
{
    DcmDataset *ds = ff.getDataset();
    std::memset(info, 0, sizeof *info);
    copy_str(info->series_uid, sizeof info->series_uid, h.series_uid);
    copy_str(info->study_uid, sizeof info->study_uid, get_str(ds, DCM_StudyInstanceUID));
    copy_str(info->frame_of_reference_uid, sizeof info->frame_of_reference_uid,
             get_str(ds, DCM_FrameOfReferenceUID));
    copy_str(info->series_description, sizeof info->series_description,
             get_str(ds, DCM_SeriesDescription));
    copy_str(info->patient_name, sizeof info->patient_name, get_str(ds, DCM_PatientName));
    copy_str(info->patient_id, sizeof info->patient_id, get_str(ds, DCM_PatientID));
    copy_str(info->modality, sizeof info->modality, get_str(ds, DCM_Modality));
    copy_str(info->manufacturer, sizeof info->manufacturer, get_str(ds, DCM_Manufacturer));
    copy_str(info->model, sizeof info->model, get_str(ds, DCM_ManufacturerModelName));
    DcmXfer xfer(ds->getOriginalXfer());
    copy_str(info->transfer_syntax, sizeof info->transfer_syntax, xfer.getXferName());
    copy_str(info->transfer_syntax_uid, sizeof info->transfer_syntax_uid, xfer.getXferID());
    copy_str(info->first_file, sizeof info->first_file, h.path);
}

bool parse_number(const std::string &text, double *out);

/* The macro `macro` (e.g. PlanePositionSequence) that applies to one frame:
 * the frame's own Per-frame Functional Group's, else the Shared one's
 * (PS3.3 C.7.6.16). */
DcmItem *frame_macro(DcmItem *per_frame, DcmItem *shared, const DcmTagKey &macro)
{
    DcmItem *m = per_frame ? seq_item(per_frame, macro, 0) : nullptr;
    return m ? m : (shared ? seq_item(shared, macro, 0) : nullptr);
}

/* Position, orientation, pixel size and rescale of one frame from the
 * functional groups. What is missing goes to frame_error and is refused
 * when the series is read (a scan that only lists series does not fail). */
void read_frame_groups(SliceHeader &fh, DcmItem *per_frame, DcmItem *shared)
{
    DcmItem *pos = frame_macro(per_frame, shared, DCM_PlanePositionSequence);
    DcmItem *orient = frame_macro(per_frame, shared, DCM_PlaneOrientationSequence);
    DcmItem *measures = frame_macro(per_frame, shared, DCM_PixelMeasuresSequence);
    const char *missing = !pos       ? "PlanePositionSequence"
                          : !orient  ? "PlaneOrientationSequence"
                          : !measures ? "PixelMeasuresSequence"
                                      : nullptr;
    if (missing) {
        fh.frame_error = std::string("no ") + missing +
                         " in its Per-frame or in the Shared Functional Groups: the frame cannot "
                         "be placed";
        return;
    }
    fh.has_ipp = get_doubles(pos, DCM_ImagePositionPatient, fh.ipp, 3);
    fh.has_iop = get_doubles(orient, DCM_ImageOrientationPatient, fh.iop, 6);
    fh.has_spacing = get_doubles(measures, DCM_PixelSpacing, fh.spacing, 2);
    get_doubles(measures, DCM_SliceThickness, &fh.thickness, 1);
    DcmItem *rescale = frame_macro(per_frame, shared, DCM_PixelValueTransformationSequence);
    if (rescale) {
        fh.has_slope = rescale->tagExists(DCM_RescaleSlope);
        fh.has_inter = rescale->tagExists(DCM_RescaleIntercept);
        fh.slope_text = get_str(rescale, DCM_RescaleSlope);
        fh.inter_text = get_str(rescale, DCM_RescaleIntercept);
    }
}

/* The slices of one image file: the file itself, or one per frame of an
 * enhanced multi-frame object (Enhanced CT/MR, Parametric Map: any object
 * with functional groups). A multi-frame file without them stays one
 * entry, which check_slice_headers refuses. */
void add_slices(std::vector<SliceHeader> &list, DcmDataset *ds, const SliceHeader &h)
{
    DcmItem *shared = seq_item(ds, DCM_SharedFunctionalGroupsSequence, 0);
    unsigned long n_per_frame = seq_card(ds, DCM_PerFrameFunctionalGroupsSequence);
    double frames = 1;
    bool frames_ok = h.frames_text.empty() ||
                     (parse_number(h.frames_text, &frames) && frames == std::floor(frames) &&
                      frames >= 1 && frames <= 1e6);
    if ((!shared && n_per_frame == 0) || !frames_ok) {
        list.push_back(h); /* a bad NumberOfFrames is refused by parse_slice_numbers */
        return;
    }
    if ((unsigned long)frames != n_per_frame) {
        SliceHeader bad = h;
        bad.enhanced = true;
        bad.frame_error = "NumberOfFrames is " + std::to_string((long)frames) +
                          " but the Per-frame Functional Groups Sequence has " +
                          std::to_string(n_per_frame) + " items: the frames cannot be placed";
        list.push_back(bad);
        return;
    }
    for (unsigned long f = 0; f < n_per_frame; f++) {
        SliceHeader fh = h;
        fh.frame = (long)f;
        fh.frames = (long)frames;
        fh.enhanced = true;
        fh.name = h.path + " frame " + std::to_string(f + 1);
        read_frame_groups(fh, seq_item(ds, DCM_PerFrameFunctionalGroupsSequence, f), shared);
        list.push_back(fh);
    }
}

struct Scan {
    std::map<std::string, std::vector<SliceHeader>> series;
    std::map<std::string, cbq_dicom_series_info> info;
    std::vector<std::string> order; /* series in order of discovery */
    size_t n_files = 0, n_not_dicom = 0, n_no_pixels = 0;
};

int list_files(std::vector<std::string> &files, const std::string &folder, cbq_error *err)
{
    std::error_code ec;
    fs::recursive_directory_iterator it(folder, fs::directory_options::skip_permission_denied, ec);
    if (ec)
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot list folder: %s", folder.c_str(),
                        ec.message().c_str());
    for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (ec)
            return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot list folder: %s", folder.c_str(),
                            ec.message().c_str());
        if (it->is_regular_file(ec))
            files.push_back(it->path().string());
    }
    std::sort(files.begin(), files.end()); /* deterministic messages only */
    return CBQ_OK;
}

int scan_folder(Scan &scan, const std::string &folder, cbq_error *err)
{
    std::vector<std::string> files;
    CBQ_TRY(list_files(files, folder, err));
    scan.n_files = files.size();
    for (const std::string &f : files) {
        SliceHeader h;
        DcmFileFormat ff;
        std::string damage;
        Kind kind = read_header(f, h, ff, &damage);
        if (!damage.empty())
            return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: damaged DICOM file: %s", f.c_str(),
                            damage.c_str());
        if (kind == Kind::not_dicom) {
            scan.n_not_dicom++;
            continue;
        }
        if (kind == Kind::no_pixels) {
            scan.n_no_pixels++;
            continue;
        }
        auto &list = scan.series[h.series_uid];
        if (list.empty()) {
            scan.order.push_back(h.series_uid);
            fill_info(&scan.info[h.series_uid], ff, h);
        }
        add_slices(list, ff.getDataset(), h);
        scan.info[h.series_uid].n_files++;
    }
    return CBQ_OK;
}

/* ---- geometry ---------------------------------------------------------- */

void cross(const double a[3], const double b[3], double out[3])
{
    out[0] = a[1] * b[2] - a[2] * b[1];
    out[1] = a[2] * b[0] - a[0] * b[2];
    out[2] = a[0] * b[1] - a[1] * b[0];
}

double dot(const double a[3], const double b[3])
{
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

/* A whole decimal string (DICOM DS/IS: leading/trailing spaces allowed)
 * that is a finite number; "1A", "", "1\\2" are not. */
bool parse_number(const std::string &text, double *out)
{
    size_t a = text.find_first_not_of(' '), b = text.find_last_not_of(' ');
    if (a == std::string::npos)
        return false;
    std::string t = text.substr(a, b - a + 1);
    char *end = nullptr;
    double v = std::strtod(t.c_str(), &end);
    if (end != t.c_str() + t.size() || !std::isfinite(v))
        return false;
    *out = v;
    return true;
}

/* NumberOfFrames and the rescale of one slice, as numbers. A value that is
 * present but not a number, or a slope of 0, would otherwise be read as a
 * default and give plausible wrong HU. */
int parse_slice_numbers(SliceHeader &h, cbq_error *err)
{
    double v = 0;
    if (!h.frames_text.empty()) {
        if (!parse_number(h.frames_text, &v) || v != std::floor(v) || v < 1 || v > 1e9)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "%s: NumberOfFrames '%s' is not a whole number >= 1",
                            h.name.c_str(), h.frames_text.c_str());
        h.frames = (long)v;
    }
    if (h.has_slope) {
        if (!parse_number(h.slope_text, &h.slope))
            return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: RescaleSlope '%s' is not a number",
                            h.name.c_str(), h.slope_text.c_str());
        if (h.slope == 0)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "%s: RescaleSlope is 0: every voxel would read as the intercept",
                            h.name.c_str());
    }
    if (h.has_inter && !parse_number(h.inter_text, &h.inter))
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: RescaleIntercept '%s' is not a number",
                        h.name.c_str(), h.inter_text.c_str());
    return CBQ_OK;
}

/* Every slice either carries RescaleSlope (RescaleIntercept) or none does:
 * a slice without it would silently read with 1 (0), hundreds of HU off. */
int check_rescale_consistent(const SliceHeader &h, const SliceHeader &a, cbq_error *err)
{
    const char *names[2] = {"RescaleSlope", "RescaleIntercept"};
    bool has_h[2] = {h.has_slope, h.has_inter}, has_a[2] = {a.has_slope, a.has_inter};
    for (int i = 0; i < 2; i++)
        if (has_h[i] != has_a[i]) {
            const SliceHeader &with = has_h[i] ? h : a, &without = has_h[i] ? a : h;
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "%s has no %s but %s has one: mixed rescale in one series",
                            without.name.c_str(), names[i], with.name.c_str());
        }
    return CBQ_OK;
}

/* Native pixel data must hold exactly Rows x Columns x BitsAllocated/8 x
 * NumberOfFrames bytes, plus one pad byte when that is odd (PS3.5 8.1.1):
 * fewer is a truncated file, more means the header describes other data
 * (Rows or Columns too small, a wrong NumberOfFrames). Compressed data can
 * only be bounded (it cannot expand beyond ~1100:1). Checked before
 * anything is allocated. */
int check_pixel_length(const SliceHeader &h, cbq_error *err)
{
    double need = (double)h.rows * h.cols * (h.bits / 8) * (double)h.frames;
    if (h.encapsulated) {
        if (need > 1100.0 * (double)h.file_bytes + 65536.0)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "%s: %.0f bytes of compressed data too short for %ux%u pixels of "
                            "%u bits: truncated or damaged file", h.name.c_str(),
                            (double)h.file_bytes, h.cols, h.rows, h.bits);
        return CBQ_OK;
    }
    double have = (double)h.pixel_bytes, pad = std::fmod(need, 2.0);
    if (have < need)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: pixel data (%lu bytes) too short for %ux%u pixels of %u bits "
                        "(%.0f bytes): truncated or damaged file", h.name.c_str(), h.pixel_bytes,
                        h.cols, h.rows, h.bits, need);
    if (have > need + pad)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: pixel data (%lu bytes) too long for %ux%u pixels of %u bits in %ld "
                        "frame(s) (%.0f bytes): %.0f bytes too many; Rows, Columns, "
                        "BitsAllocated or NumberOfFrames disagree with the data",
                        h.name.c_str(), h.pixel_bytes, h.cols, h.rows, h.bits, h.frames, need,
                        have - need);
    return CBQ_OK;
}

int check_slice_headers(std::vector<SliceHeader> &s, cbq_error *err)
{
    for (SliceHeader &h : s)
        CBQ_TRY(parse_slice_numbers(h, err));
    const SliceHeader &a = s[0];
    for (const SliceHeader &h : s) {
        if (!h.frame_error.empty())
            return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: %s", h.name.c_str(), h.frame_error.c_str());
        if (h.frames != 1 && !h.enhanced)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "%s: multi-frame image (%ld frames) without functional groups: "
                            "nothing places its frames; cbctiq reads one slice per file or "
                            "enhanced multi-frame objects", h.name.c_str(), h.frames);
        if (h.samples != 1)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "%s: %u samples per pixel (colour); a CT slice has 1", h.name.c_str(),
                            h.samples);
        if (h.rows == 0 || h.cols == 0)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: Rows/Columns missing or zero",
                            h.name.c_str());
        if (!h.is_float && h.bits != 8 && h.bits != 16 && h.bits != 32)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: BitsAllocated = %u, expected 8, 16 or 32",
                            h.name.c_str(), h.bits);
        if (h.is_float && h.bits != 32 && h.bits != 64)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "%s: float pixel data with BitsAllocated = %u, expected 32 (Float "
                            "Pixel Data) or 64 (Double Float Pixel Data)", h.name.c_str(), h.bits);
        CBQ_TRY(check_pixel_length(h, err));
        CBQ_TRY(check_rescale_consistent(h, a, err));
        if (!h.has_ipp || !h.has_iop)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "%s: ImagePositionPatient or ImageOrientationPatient missing or not "
                            "numeric: the slice cannot be placed", h.name.c_str());
        if (!h.has_spacing || !(h.spacing[0] > 0) || !(h.spacing[1] > 0))
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "%s: PixelSpacing missing or not positive", h.name.c_str());
        if (h.rows != a.rows || h.cols != a.cols)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "%s: %ux%u pixels but %s has %ux%u: mixed image sizes in one series",
                            h.name.c_str(), h.cols, h.rows, a.name.c_str(), a.cols, a.rows);
        for (int i = 0; i < 6; i++)
            if (std::fabs(h.iop[i] - a.iop[i]) > 1e-4)
                return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                                "%s: ImageOrientationPatient differs from %s: mixed orientations "
                                "in one series", h.name.c_str(), a.name.c_str());
        if (std::fabs(h.spacing[0] - a.spacing[0]) > 1e-4 ||
            std::fabs(h.spacing[1] - a.spacing[1]) > 1e-4)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "%s: PixelSpacing differs from %s: mixed pixel sizes in one series",
                            h.name.c_str(), a.name.c_str());
    }
    const double *r = a.iop, *c = a.iop + 3;
    if (std::fabs(dot(r, r) - 1) > 1e-3 || std::fabs(dot(c, c) - 1) > 1e-3 ||
        std::fabs(dot(r, c)) > 1e-3)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: ImageOrientationPatient is not two orthogonal unit vectors",
                        a.name.c_str());
    return CBQ_OK;
}

/* Every slice must sit on the line from the first slice to the last (s is
 * sorted along the normal). In-plane offsets that jump back and forth
 * (zig-zag positions, as dcm2niix warns of) mean interleaved stacks or
 * wrong ImagePositionPatient values; a first-to-last check alone would
 * miss them when the first and last slices happen to line up. */
int check_on_one_line(const std::vector<SliceHeader> &s, double tol_mm, cbq_error *err)
{
    const SliceHeader &f = s.front(), &l = s.back();
    double span = l.along - f.along, worst = 0;
    size_t worst_k = 0;
    for (size_t k = 1; k + 1 < s.size(); k++) {
        double t = (s[k].along - f.along) / span, off[3];
        for (int a = 0; a < 3; a++)
            off[a] = s[k].ipp[a] - (f.ipp[a] + t * (l.ipp[a] - f.ipp[a]));
        double dev = std::sqrt(dot(off, off));
        if (dev > worst) {
            worst = dev;
            worst_k = k;
        }
    }
    if (worst > tol_mm)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: ImagePositionPatient lies %.3f mm in-plane off the line from %s to "
                        "%s: slice positions zig-zag along the stack (interleaved stacks or "
                        "wrong positions); a voxel grid cannot hold them",
                        s[worst_k].name.c_str(), worst, f.name.c_str(), l.name.c_str());
    return CBQ_OK;
}

/* Sorts along the normal and checks the stack: duplicates, gaps, zig-zag,
 * tilt. */
int sort_and_check_stack(std::vector<SliceHeader> &s, double normal[3], double *spacing,
                         cbq_error *err)
{
    cross(s[0].iop, s[0].iop + 3, normal);
    for (SliceHeader &h : s)
        h.along = dot(h.ipp, normal);
    std::stable_sort(s.begin(), s.end(),
                     [](const SliceHeader &x, const SliceHeader &y) { return x.along < y.along; });
    size_t n = s.size();
    if (n == 1) {
        *spacing = s[0].thickness > 0 ? s[0].thickness : 1.0;
        return CBQ_OK;
    }
    std::vector<double> gaps(n - 1);
    for (size_t i = 0; i + 1 < n; i++) {
        gaps[i] = s[i + 1].along - s[i].along;
        if (gaps[i] < 1e-3)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "%s and %s: two slices at the same position (%.3f mm along the "
                            "normal): duplicate files or several acquisitions in one series",
                            s[i].name.c_str(), s[i + 1].name.c_str(), s[i].along);
    }
    std::vector<double> sorted = gaps;
    std::nth_element(sorted.begin(), sorted.begin() + (long)sorted.size() / 2, sorted.end());
    double med = sorted[sorted.size() / 2], tol = std::max(0.02, 0.01 * med);
    for (size_t i = 0; i + 1 < n; i++) {
        double g = gaps[i];
        if (std::fabs(g - med) <= tol)
            continue;
        double ratio = g / med;
        if (std::fabs(ratio - std::round(ratio)) * med <= tol && ratio > 1.5)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "%s and %s: %.0f slice(s) missing between them (gap %.3f mm, the "
                            "others %.3f mm)", s[i].name.c_str(), s[i + 1].name.c_str(),
                            std::round(ratio) - 1, g, med);
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s and %s: uneven slice spacing (gap %.3f mm, the others %.3f mm); "
                        "cbctiq needs evenly spaced slices", s[i].name.c_str(),
                        s[i + 1].name.c_str(), g, med);
    }
    /* Positions must move along the normal only; an in-plane drift is a
     * gantry tilt (or a sheared stack) that a voxel grid cannot hold. */
    const SliceHeader &f = s.front(), &l = s.back();
    double d[3] = {l.ipp[0] - f.ipp[0], l.ipp[1] - f.ipp[1], l.ipp[2] - f.ipp[2]};
    double along = dot(d, normal);
    CBQ_TRY(check_on_one_line(s, std::max(0.01, 1e-4 * along), err));
    double drift[3] = {d[0] - along * normal[0], d[1] - along * normal[1], d[2] - along * normal[2]};
    double drift_mm = std::sqrt(dot(drift, drift));
    if (drift_mm > std::max(0.01, 1e-4 * along))
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s to %s: slice positions drift %.2f mm in-plane over %.1f mm "
                        "(gantry tilt of %.2f degrees or a sheared stack); resample the series "
                        "to an orthogonal grid first", f.name.c_str(), l.name.c_str(), drift_mm,
                        along, std::atan2(drift_mm, along) * 180 / M_PI);
    *spacing = along / (double)(n - 1);
    return CBQ_OK;
}

void set_affine(cbq_volume *vol, const SliceHeader &first, const double normal[3], double spacing)
{
    const double *r = first.iop, *c = first.iop + 3;
    double lps[3][4];
    for (int a = 0; a < 3; a++) {
        lps[a][0] = r[a] * first.spacing[1]; /* i = column index: along the row cosine */
        lps[a][1] = c[a] * first.spacing[0]; /* j = row index: along the column cosine */
        lps[a][2] = normal[a] * spacing;
        lps[a][3] = first.ipp[a];
    }
    std::memset(vol->affine, 0, sizeof vol->affine);
    for (int a = 0; a < 3; a++)
        for (int col = 0; col < 4; col++)
            vol->affine[a][col] = (a < 2 ? -lps[a][col] : lps[a][col]) + 0.0; /* no -0 */
    vol->affine[3][3] = 1;
    vol->spacing[0] = first.spacing[1];
    vol->spacing[1] = first.spacing[0];
    vol->spacing[2] = spacing;
}

/* ---- pixels --------------------------------------------------------------- */

/* HU = stored * slope + intercept in double, rounded once to float. The
 * common CT case (slope 1, whole intercept, 8/16-bit data) is exact in
 * integer arithmetic, which vectorises. */
template <typename T>
void to_hu(const T *raw, size_t n, double slope, double inter, float *out)
{
    if (sizeof(T) <= 2 && slope == 1.0 && inter == std::floor(inter) && std::fabs(inter) < 1e6) {
        int32_t off = (int32_t)inter;
        for (size_t i = 0; i < n; i++)
            out[i] = (float)((int32_t)raw[i] + off);
        return;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = (float)((double)raw[i] * slope + inter);
}

void slice_range(const float *v, size_t n, float *lo, float *hi)
{
    float a = *lo, b = *hi;
    for (size_t i = 0; i < n; i++) {
        a = v[i] < a ? v[i] : a;
        b = v[i] > b ? v[i] : b;
    }
    *lo = a;
    *hi = b;
}

/* Stored values equal to PixelPaddingValue, or between it and
 * PixelPaddingRangeLimit, lie outside the reconstructed image (PS3.3
 * C.7.5.1.1.2). Rescaled they can land anywhere, e.g. 65535 stored with
 * intercept -1024 reads as 64511 HU, brighter than metal; they become air. */
struct Padding {
    bool present = false;
    long long lo = 0, hi = 0;
};

bool get_stored_value(DcmItem *ds, const DcmTagKey &tag, bool is_signed, long long *v)
{
    DcmElement *el = nullptr;
    if (ds->findAndGetElement(tag, el).bad() || !el || el->getVM() < 1)
        return false;
    Uint16 u;
    Sint16 s;
    Uint32 u32;
    Sint32 s32;
    if (el->getUint16(u).good())
        *v = is_signed ? (long long)(Sint16)u : (long long)u; /* US read where SS was meant */
    else if (el->getSint16(s).good())
        *v = s;
    else if (el->getUint32(u32).good())
        *v = is_signed ? (long long)(Sint32)u32 : (long long)u32;
    else if (el->getSint32(s32).good())
        *v = s32;
    else
        return false;
    return true;
}

Padding read_padding(DcmItem *ds, bool is_signed)
{
    Padding p;
    long long a = 0, b = 0;
    if (!get_stored_value(ds, DCM_PixelPaddingValue, is_signed, &a))
        return p;
    if (!get_stored_value(ds, DCM_PixelPaddingRangeLimit, is_signed, &b))
        b = a;
    p.present = true;
    p.lo = a < b ? a : b;
    p.hi = a < b ? b : a;
    return p;
}

template <typename T>
size_t apply_padding(const T *raw, size_t n, const Padding &p, float *out)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if ((long long)raw[i] >= p.lo && (long long)raw[i] <= p.hi) {
            out[i] = (float)CBQ_DICOM_PADDING_HU;
            count++;
        }
    return count;
}

/* How stored values sit in their cells (PS3.3 C.7.6.3.1). */
struct PixelFormat {
    unsigned bits_allocated = 0, bits_stored = 0;
    bool is_signed = false;
};

int read_pixel_format(DcmItem *ds, const std::string &path, PixelFormat *pf, cbq_error *err)
{
    Uint16 bits = 0, stored = 0, high = 0, repr = 0;
    ds->findAndGetUint16(DCM_BitsAllocated, bits);
    if (bits != 8 && bits != 16 && bits != 32)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: BitsAllocated = %u, expected 8, 16 or 32",
                        path.c_str(), bits);
    if (ds->findAndGetUint16(DCM_BitsStored, stored).bad())
        stored = bits;
    if (stored < 1 || stored > bits)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: BitsStored = %u, expected 1 to BitsAllocated "
                        "(%u)", path.c_str(), stored, bits);
    if (ds->findAndGetUint16(DCM_HighBit, high).bad())
        high = (Uint16)(stored - 1);
    if (high != stored - 1)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: HighBit = %u with BitsStored = %u: only values stored in the low "
                        "bits (HighBit = BitsStored - 1) are supported", path.c_str(), high,
                        stored);
    ds->findAndGetUint16(DCM_PixelRepresentation, repr);
    if (repr > 1)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: PixelRepresentation = %u, expected 0 (unsigned) or 1 (signed)",
                        path.c_str(), repr);
    pf->bits_allocated = bits;
    pf->bits_stored = stored;
    pf->is_signed = repr == 1;
    return CBQ_OK;
}

/* Only the low BitsStored bits of a cell are the value; the bits above may
 * hold overlays or scanner garbage. Like dcm2niix they are masked off, and
 * signed values are sign-extended from bit BitsStored - 1. */
template <typename T>
void mask_to_bits_stored(T *v, size_t n, unsigned bits_stored, bool is_signed)
{
    using U = typename std::make_unsigned<T>::type;
    const U mask = (U)(((uint64_t)1 << bits_stored) - 1);
    const U sign = (U)((uint64_t)1 << (bits_stored - 1));
    const U high = (U)~mask;
    for (size_t i = 0; i < n; i++) {
        U u = (U)((U)v[i] & mask);
        if (is_signed && (u & sign))
            u = (U)(u | high);
        v[i] = (T)u;
    }
}

template <typename T>
void byteswap_values(T *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char *b = (unsigned char *)&v[i];
        std::reverse(b, b + sizeof(T));
    }
}

/* The byte order to ask DCMTK for. It hands OW data over as 16-bit words
 * in the order asked for, which is right for 8- and 16-bit cells; a 32-bit
 * cell in OW is two words that only the file's own byte order keeps
 * together (as pydicom reads it). Decoded (formerly compressed) data is
 * little endian. */
E_ByteOrder cell_byte_order(DcmDataset *ds, unsigned bits, bool was_encapsulated)
{
    if (bits == 32 && !was_encapsulated)
        return DcmXfer(ds->getOriginalXfer()).getByteOrder();
    return EBO_LittleEndian;
}

/* Decompresses in place. DCMTK's decoders return success on some damaged
 * streams and only log a warning; those warnings are errors here. */
int decompress(DcmDataset *ds, const SliceHeader &h, cbq_error *err)
{
    DcmXfer xfer(ds->getOriginalXfer());
    if (!DcmCodecList::canChangeCoding(xfer.getXfer(), EXS_LittleEndianExplicit))
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: no decoder for transfer syntax %s (%s) in this DCMTK build; "
                        "decompress the series first (e.g. gdcmconv --raw)", h.path.c_str(),
                        xfer.getXferName(), xfer.getXferID());
    DecoderWarnings warnings;
    OFCondition cond = ds->chooseRepresentation(EXS_LittleEndianExplicit, nullptr);
    if (cond.bad() || !ds->canWriteXfer(EXS_LittleEndianExplicit))
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: cannot decode pixel data in transfer syntax %s (%s): %s",
                        h.path.c_str(), xfer.getXferName(), xfer.getXferID(),
                        cond.bad() ? cond.text() : "no decoder");
    if (!warnings.list.empty())
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: damaged %s pixel data: the decoder reports \"%s\"%s",
                        h.path.c_str(), xfer.getXferName(), warnings.list[0].c_str(),
                        warnings.list.size() > 1 ? " (and more)" : "");
    return CBQ_OK;
}

/* ---- frames: where the cells come from ---------------------------------- */

/* The cells of each frame: native (or DCMTK-decoded) pixel data, or JPEG
 * 2000 fragments that OpenJPEG decodes one frame at a time. */
struct FrameSource {
    DcmElement *px = nullptr;        /* native cells, all frames one after another */
    E_ByteOrder order = EBO_LittleEndian;
    DcmPixelSequence *j2k = nullptr; /* JPEG 2000 fragments; item 0 is the offset table */
};

bool is_jpeg2000(const DcmXfer &xfer)
{
    return xfer.getXfer() == EXS_JPEG2000LosslessOnly || xfer.getXfer() == EXS_JPEG2000;
}

/* A fragment that opens a codestream: SOC and SIZ markers (FF 4F FF 51),
 * or a JP2 file's signature box. */
bool starts_codestream(const Uint8 *p, Uint32 len)
{
    static const Uint8 soc[] = {0xFF, 0x4F, 0xFF, 0x51};
    static const Uint8 jp2[] = {0, 0, 0, 0x0C, 'j', 'P', ' ', ' '};
    return (len >= 4 && std::memcmp(p, soc, 4) == 0) || (len >= 8 && std::memcmp(p, jp2, 8) == 0);
}

/* The bytes of one frame. A frame may span several fragments (PS3.5 A.4):
 * with as many fragments as frames each is one frame, a single frame is
 * all of them, and otherwise a frame starts at each fragment that opens a
 * codestream. */
int j2k_frame_bytes(DcmPixelSequence *seq, const SliceHeader &h, std::vector<Uint8> &out,
                    cbq_error *err)
{
    std::vector<std::pair<Uint8 *, Uint32>> frags;
    for (unsigned long i = 1; i < seq->card(); i++) {
        DcmPixelItem *item = nullptr;
        Uint8 *p = nullptr;
        Uint32 len = 0;
        if (seq->getItem(item, i).good() && item)
            len = item->getLength();
        if (!item || (len && (item->getUint8Array(p).bad() || !p)))
            return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: cannot read JPEG 2000 fragment %lu",
                            h.path.c_str(), i);
        frags.push_back({p, len});
    }
    std::vector<size_t> starts;
    for (size_t i = 0; i < frags.size(); i++)
        if (frags.size() == (size_t)h.frames || (h.frames == 1 && i == 0) ||
            (h.frames > 1 && starts_codestream(frags[i].first, frags[i].second)))
            starts.push_back(i);
    if (frags.empty() || starts.size() != (size_t)h.frames)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: %zu JPEG 2000 fragments, %zu of them starting a codestream, for %ld "
                        "frame(s): which fragments hold which frame cannot be told",
                        h.path.c_str(), frags.size(), starts.size(), h.frames);
    size_t first = starts[(size_t)h.frame];
    size_t end = (size_t)h.frame + 1 < starts.size() ? starts[(size_t)h.frame + 1] : frags.size();
    for (size_t i = first; i < end; i++)
        out.insert(out.end(), frags[i].first, frags[i].first + frags[i].second);
    return CBQ_OK;
}

/* How JPEG 2000 samples become stored values. The codestream's precision
 * and signedness are what was encoded, and the DICOM header may disagree:
 * pydicom's J2K_pixelrep_mismatch.dcm has PixelRepresentation 1 over
 * unsigned 13-bit samples, 693_J2KI.dcm BitsStored 14 over 16-bit ones.
 * As pydicom (and GDCM) read them, the codestream decides: unsigned
 * samples under PixelRepresentation 1 are two's complement patterns of
 * the codestream's precision, sign-extended from its top bit; other
 * samples are the values. BitsStored is not applied (lossy coding may
 * overshoot it, and masking would wrap such a value around). Signed
 * samples under PixelRepresentation 0 have no single reading: refused. */
int check_j2k_samples(const cbq_j2k_frame &f, const PixelFormat &pf, const SliceHeader &h,
                      cbq_error *err)
{
    if (f.is_signed && !pf.is_signed)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: the JPEG 2000 data holds signed samples but PixelRepresentation is "
                        "0 (unsigned): which values are meant cannot be told", h.name.c_str());
    if (f.precision > pf.bits_allocated)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: the JPEG 2000 data has %u-bit samples, more than BitsAllocated (%u)",
                        h.name.c_str(), f.precision, pf.bits_allocated);
    return CBQ_OK;
}

template <typename T>
int j2k_cells(DcmPixelSequence *seq, const SliceHeader &h, const PixelFormat &pf,
              std::vector<T> &cells, cbq_error *err)
{
    std::vector<Uint8> bytes;
    CBQ_TRY(j2k_frame_bytes(seq, h, bytes, err));
    cbq_j2k_frame f;
    CBQ_TRY(cbq_j2k_decode(&f, bytes.data(), bytes.size(), h.cols, h.rows, h.name.c_str(), err));
    int rc = check_j2k_samples(f, pf, h, err);
    bool extend = pf.is_signed && !f.is_signed && f.precision < 32;
    int64_t sign = extend ? (int64_t)1 << (f.precision - 1) : 0;
    if (rc == CBQ_OK)
        for (size_t i = 0; i < cells.size(); i++) {
            int64_t v = f.samples[i];
            if (extend && (v & sign))
                v -= 2 * sign;
            cells[i] = (T)v; /* fits: precision <= BitsAllocated */
        }
    std::free(f.samples);
    return rc;
}

/* Reads one frame's cells of type T, masks them to BitsStored, rescales
 * and marks padding. */
template <typename T>
int frame_to_hu(const FrameSource &src, const SliceHeader &h, const PixelFormat &pf,
                const Padding &pad, float *out, size_t *n_padding, cbq_error *err)
{
    size_t n = (size_t)h.rows * h.cols;
    std::vector<T> cells(n);
    if (src.j2k) {
        CBQ_TRY(j2k_cells(src.j2k, h, pf, cells, err));
    } else {
        OFCondition cond = src.px->getPartialValue(cells.data(),
                                                   (Uint32)((size_t)h.frame * n * sizeof(T)),
                                                   (Uint32)(n * sizeof(T)), nullptr, src.order);
        if (cond.bad())
            return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: cannot read pixel data: %s",
                            h.name.c_str(), cond.text());
        if (src.order != gLocalByteOrder && sizeof(T) > 1)
            byteswap_values(cells.data(), n);
    }
    if (!src.j2k && pf.bits_stored < 8 * sizeof(T))
        mask_to_bits_stored(cells.data(), n, pf.bits_stored, pf.is_signed);
    to_hu(cells.data(), n, h.slope, h.inter, out);
    *n_padding = pad.present ? apply_padding(cells.data(), n, pad, out) : 0;
    return CBQ_OK;
}

int frame_to_hu_any(const FrameSource &src, const SliceHeader &h, const PixelFormat &pf,
                    const Padding &pad, float *out, size_t *n_padding, cbq_error *err)
{
    if (pf.bits_allocated == 8)
        return pf.is_signed ? frame_to_hu<int8_t>(src, h, pf, pad, out, n_padding, err)
                            : frame_to_hu<uint8_t>(src, h, pf, pad, out, n_padding, err);
    if (pf.bits_allocated == 16)
        return pf.is_signed ? frame_to_hu<int16_t>(src, h, pf, pad, out, n_padding, err)
                            : frame_to_hu<uint16_t>(src, h, pf, pad, out, n_padding, err);
    return pf.is_signed ? frame_to_hu<int32_t>(src, h, pf, pad, out, n_padding, err)
                        : frame_to_hu<uint32_t>(src, h, pf, pad, out, n_padding, err);
}

/* Float Pixel Data (32-bit) or Double Float Pixel Data (64-bit), as a
 * Parametric Map holds them: the values themselves, through a rescale only
 * when one is given. Non-finite values are refused, as in a NIfTI volume. */
template <typename T>
int float_frame(DcmElement *px, const SliceHeader &h, float *out, cbq_error *err)
{
    size_t n = (size_t)h.rows * h.cols;
    std::vector<T> v(n);
    OFCondition cond = px->getPartialValue(v.data(), (Uint32)((size_t)h.frame * n * sizeof(T)),
                                           (Uint32)(n * sizeof(T)));
    if (cond.bad())
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: cannot read float pixel data: %s",
                        h.name.c_str(), cond.text());
    for (size_t i = 0; i < n; i++) {
        double x = (double)v[i] * h.slope + h.inter;
        if (!std::isfinite(x))
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "%s: float pixel value at column %zu, row %zu is NaN or infinite; "
                            "a volume must be finite", h.name.c_str(), i % h.cols, i / h.cols);
        out[i] = (float)x;
    }
    return CBQ_OK;
}

int float_frames(DcmDataset *ds, const std::vector<SliceHeader> &s, const std::vector<size_t> &ks,
                 float *data, size_t plane, cbq_error *err)
{
    const SliceHeader &h = s[ks[0]];
    bool is_double = ds->tagExists(DCM_DoubleFloatPixelData);
    DcmElement *px = nullptr;
    if (ds->findAndGetElement(is_double ? DCM_DoubleFloatPixelData : DCM_FloatPixelData, px)
            .bad() || !px)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: no float pixel data", h.path.c_str());
    if (h.bits != (is_double ? 64u : 32u))
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: BitsAllocated = %u in %s Float Pixel Data, "
                        "expected %u", h.path.c_str(), h.bits, is_double ? "Double" : "(single)",
                        is_double ? 64u : 32u);
    for (size_t k : ks)
        CBQ_TRY(is_double ? float_frame<Float64>(px, s[k], data + k * plane, err)
                          : float_frame<Float32>(px, s[k], data + k * plane, err));
    return CBQ_OK;
}

/* Native (or decoded) cells: enough bytes for every frame. */
int native_cells(DcmDataset *ds, const SliceHeader &h, const PixelFormat &pf, DcmElement **px,
                 cbq_error *err)
{
    if (ds->findAndGetElement(DCM_PixelData, *px).bad() || !*px)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: no pixel data", h.path.c_str());
    double need = (double)h.rows * h.cols * (pf.bits_allocated / 8) * (double)h.frames;
    if ((double)(*px)->getLength() < need || need > (double)0xFFFFFFFFu)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: decoded pixel data holds %lu bytes, %ld frame(s) of %ux%u pixels of "
                        "%u bits need %.0f: damaged file", h.path.c_str(),
                        (unsigned long)(*px)->getLength(), h.frames, h.cols, h.rows,
                        pf.bits_allocated, need);
    return CBQ_OK;
}

int j2k_fragments(DcmDataset *ds, const SliceHeader &h, DcmPixelSequence **seq, cbq_error *err)
{
    DcmElement *el = nullptr;
    DcmPixelData *pd = nullptr;
    if (ds->findAndGetElement(DCM_PixelData, el).good() && el)
        pd = dynamic_cast<DcmPixelData *>(el);
    if (!pd || pd->getEncapsulatedRepresentation(ds->getOriginalXfer(), nullptr, *seq).bad() ||
        !*seq)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: JPEG 2000 transfer syntax but the pixel data is not encapsulated "
                        "fragments: damaged file", h.path.c_str());
    return CBQ_OK;
}

/* Decodes the frames of one file that the series uses (the slices ks of
 * s): the file is read, and decompressed, once; each frame lands at its
 * slice k of `data`. */
int decode_file(const std::vector<SliceHeader> &s, const std::vector<size_t> &ks, float *data,
                size_t plane, size_t *n_padding, cbq_error *err)
{
    const SliceHeader &h = s[ks[0]];
    DcmFileFormat ff;
    OFCondition cond = ff.loadFile(h.path.c_str());
    if (cond.bad())
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: cannot read DICOM: %s", h.path.c_str(),
                        cond.text());
    DcmDataset *ds = ff.getDataset();
    if (h.is_float)
        return float_frames(ds, s, ks, data, plane, err);
    DcmXfer xfer(ds->getOriginalXfer());
    bool was_encapsulated = xfer.isEncapsulated();
    FrameSource src;
    if (is_jpeg2000(xfer)) {
        CBQ_TRY(j2k_fragments(ds, h, &src.j2k, err));
    } else if (was_encapsulated) {
        CBQ_TRY(decompress(ds, h, err));
    }
    PixelFormat pf;
    CBQ_TRY(read_pixel_format(ds, h.path, &pf, err));
    if (!src.j2k) {
        CBQ_TRY(native_cells(ds, h, pf, &src.px, err));
        src.order = cell_byte_order(ds, pf.bits_allocated, was_encapsulated);
    }
    Padding pad = read_padding(ds, pf.is_signed);
    for (size_t k : ks) {
        size_t padded = 0;
        CBQ_TRY(frame_to_hu_any(src, s[k], pf, pad, data + k * plane, &padded, err));
        *n_padding += padded;
    }
    return CBQ_OK;
}

/* The slices of each file, files in the order of their first slice along
 * the stack (so that the first bad file met is the one reported). */
std::vector<std::vector<size_t>> slices_by_file(const std::vector<SliceHeader> &s)
{
    std::map<std::string, size_t> index;
    std::vector<std::vector<size_t>> files;
    for (size_t k = 0; k < s.size(); k++) {
        auto it = index.emplace(s[k].path, files.size()).first;
        if (it->second == files.size())
            files.emplace_back();
        files[it->second].push_back(k);
    }
    return files;
}

/* ---- series selection ------------------------------------------------------ */

int locate(std::string &folder, std::string &uid, const char *path, const char *series_uid,
           cbq_error *err)
{
    std::error_code ec;
    uid = series_uid ? series_uid : "";
    if (fs::is_directory(path, ec)) {
        folder = path;
        return CBQ_OK;
    }
    if (!fs::exists(path, ec))
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: no such file or folder", path);
    SliceHeader h;
    DcmFileFormat ff;
    std::string damage;
    Kind kind = read_header(path, h, ff, &damage);
    if (!damage.empty())
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: damaged DICOM file: %s", path, damage.c_str());
    if (kind == Kind::not_dicom)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: not a DICOM file", path);
    if (kind == Kind::no_pixels)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: a DICOM file without pixel data (modality %s): not an image",
                        path, get_str(ff.getDataset(), DCM_Modality).c_str());
    if (uid.empty())
        uid = h.series_uid;
    fs::path parent = fs::path(path).parent_path();
    folder = parent.empty() ? "." : parent.string();
    return CBQ_OK;
}

int pick_series(std::vector<SliceHeader> **out, cbq_dicom_series_info *info, Scan &scan,
                const std::string &folder, const std::string &uid, cbq_error *err)
{
    if (scan.series.empty())
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: no DICOM image series found (%zu files: %zu not DICOM, %zu DICOM "
                        "without pixel data)", folder.c_str(), scan.n_files, scan.n_not_dicom,
                        scan.n_no_pixels);
    if (!uid.empty()) {
        auto it = scan.series.find(uid);
        if (it == scan.series.end())
            return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: no series with UID %s (%zu series found)",
                            folder.c_str(), uid.c_str(), scan.series.size());
        *out = &it->second;
        *info = scan.info[uid];
        return CBQ_OK;
    }
    if (scan.series.size() > 1) {
        std::string list;
        for (const std::string &u : scan.order) {
            const cbq_dicom_series_info &si = scan.info[u];
            char line[512];
            std::snprintf(line, sizeof line, "\n  %s  \"%s\"  %s  %zu files", u.c_str(),
                          si.series_description, si.modality, si.n_files);
            list += line;
        }
        return CBQ_FAIL(err, CBQ_ERR_ARG,
                        "%s: %zu image series found; choose one with --series UID:%s",
                        folder.c_str(), scan.series.size(), list.c_str());
    }
    *out = &scan.series.begin()->second;
    *info = scan.info.begin()->second;
    return CBQ_OK;
}

int read_series(cbq_volume *vol, cbq_dicom_meta *meta, const char *path, const char *series_uid,
                cbq_error *err)
{
    std::string folder, uid;
    CBQ_TRY(locate(folder, uid, path, series_uid, err));
    Scan scan;
    CBQ_TRY(scan_folder(scan, folder, err));
    std::vector<SliceHeader> *slices = nullptr;
    cbq_dicom_series_info info;
    CBQ_TRY(pick_series(&slices, &info, scan, folder, uid, err));
    CBQ_TRY(check_slice_headers(*slices, err));
    double normal[3], spacing = 1;
    CBQ_TRY(sort_and_check_stack(*slices, normal, &spacing, err));
    const SliceHeader &first = slices->front();
    CBQ_TRY(cbq_volume_alloc(vol, first.cols, first.rows, slices->size(), nullptr, 0, err));
    set_affine(vol, first, normal, spacing);
    cbq_io_advise_huge(vol);
    size_t plane = (size_t)first.rows * first.cols;
    float lo = INFINITY, hi = -INFINITY;
    size_t n_padding = 0;
    for (const std::vector<size_t> &ks : slices_by_file(*slices)) {
        int rc = decode_file(*slices, ks, vol->data, plane, &n_padding, err);
        if (rc != CBQ_OK) {
            cbq_volume_free(vol);
            return rc;
        }
    }
    slice_range(vol->data, plane * slices->size(), &lo, &hi);
    if (meta) {
        std::memset(meta, 0, sizeof *meta);
        meta->info = info;
        meta->n_slices = slices->size();
        meta->slice_spacing = spacing;
        meta->rescale_slope = first.slope;
        meta->rescale_intercept = first.inter;
        meta->hu_min = lo;
        meta->hu_max = hi;
        meta->n_padding = n_padding;
    }
    return CBQ_OK;
}

/* ---- RTSTRUCT ------------------------------------------------------------------ */

void read_references(cbq_rtstruct *rs, DcmDataset *ds)
{
    DcmItem *frame = seq_item(ds, DCM_ReferencedFrameOfReferenceSequence, 0);
    if (!frame)
        return;
    copy_str(rs->frame_of_reference_uid, sizeof rs->frame_of_reference_uid,
             get_str(frame, DCM_FrameOfReferenceUID));
    DcmItem *study = seq_item(frame, DCM_RTReferencedStudySequence, 0);
    DcmItem *series = study ? seq_item(study, DCM_RTReferencedSeriesSequence, 0) : nullptr;
    if (series)
        copy_str(rs->referenced_series_uid, sizeof rs->referenced_series_uid,
                 get_str(series, DCM_SeriesInstanceUID));
}

int read_contours(cbq_roi *roi, DcmItem *roi_contour, const char *path, cbq_error *err)
{
    unsigned long nc = seq_card(roi_contour, DCM_ContourSequence);
    roi->contours = (cbq_contour *)calloc(nc ? nc : 1, sizeof(cbq_contour));
    if (!roi->contours)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", path);
    for (unsigned long c = 0; c < nc; c++) {
        DcmItem *ci = seq_item(roi_contour, DCM_ContourSequence, c);
        if (!ci || get_str(ci, DCM_ContourGeometricType) != "CLOSED_PLANAR")
            continue;
        DcmElement *el = nullptr;
        if (ci->findAndGetElement(DCM_ContourData, el).bad() || !el)
            continue;
        OFVector<Float64> v;
        DcmDecimalString *ds = dynamic_cast<DcmDecimalString *>(el);
        if (!ds || ds->getFloat64Vector(v).bad() || v.size() % 3 != 0 || v.size() < 9)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "%s: ROI %d \"%s\": contour %lu has %zu coordinates, expected a "
                            "multiple of 3 and at least 3 points", path, roi->number, roi->name,
                            c + 1, (size_t)v.size());
        cbq_contour *ct = &roi->contours[roi->n_contours];
        ct->xyz = (double *)malloc(v.size() * sizeof(double));
        if (!ct->xyz)
            return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", path);
        ct->n_points = v.size() / 3;
        roi->n_contours++; /* owned from here on, freed by cbq_rtstruct_free */
        for (size_t i = 0; i < v.size(); i++) {
            if (!std::isfinite(v[i]))
                return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: ROI \"%s\": non-finite contour point",
                                path, roi->name);
            ct->xyz[i] = (i % 3 < 2) ? -v[i] : v[i]; /* LPS -> RAS */
        }
    }
    return CBQ_OK;
}

int read_rtstruct(cbq_rtstruct *rs, const char *path, cbq_error *err)
{
    DcmFileFormat ff;
    OFCondition cond = ff.loadFile(path);
    if (cond.bad())
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: cannot read DICOM: %s", path, cond.text());
    DcmDataset *ds = ff.getDataset();
    std::string modality = get_str(ds, DCM_Modality);
    if (modality != "RTSTRUCT")
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: modality %s, expected an RTSTRUCT", path,
                        modality.empty() ? "(none)" : modality.c_str());
    read_references(rs, ds);
    unsigned long nr = seq_card(ds, DCM_StructureSetROISequence);
    rs->rois = (cbq_roi *)calloc(nr ? nr : 1, sizeof(cbq_roi));
    if (!rs->rois)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", path);
    for (unsigned long r = 0; r < nr; r++) {
        DcmItem *it = seq_item(ds, DCM_StructureSetROISequence, r);
        cbq_roi *roi = &rs->rois[rs->n_rois++];
        Sint32 num = 0;
        if (it)
            it->findAndGetSint32(DCM_ROINumber, num);
        roi->number = num;
        copy_str(roi->name, sizeof roi->name, it ? get_str(it, DCM_ROIName) : "");
    }
    unsigned long nrc = seq_card(ds, DCM_ROIContourSequence);
    for (unsigned long r = 0; r < nrc; r++) {
        DcmItem *it = seq_item(ds, DCM_ROIContourSequence, r);
        Sint32 ref = 0;
        if (!it || it->findAndGetSint32(DCM_ReferencedROINumber, ref).bad())
            continue;
        for (size_t i = 0; i < rs->n_rois; i++)
            if (rs->rois[i].number == ref && rs->rois[i].n_contours == 0 && !rs->rois[i].contours)
                CBQ_TRY(read_contours(&rs->rois[i], it, path, err));
    }
    return CBQ_OK;
}

} /* namespace */

/* ---- C entry points ------------------------------------------------------------- */

extern "C" int cbq_dicom_find_series(cbq_dicom_series_info **series, size_t *n_series,
                                     const char *folder, cbq_error *err)
{
    *series = nullptr;
    *n_series = 0;
    try {
        dcmtk_init();
        Scan scan;
        CBQ_TRY(scan_folder(scan, folder, err));
        if (scan.order.empty())
            return CBQ_OK;
        auto *out = (cbq_dicom_series_info *)calloc(scan.order.size(), sizeof **series);
        if (!out)
            return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", folder);
        for (size_t i = 0; i < scan.order.size(); i++)
            out[i] = scan.info[scan.order[i]];
        *series = out;
        *n_series = scan.order.size();
        return CBQ_OK;
    } catch (const std::exception &e) {
        return CBQ_FAIL(err, CBQ_ERR_INTERNAL, "%s: %s", folder, e.what());
    } catch (...) {
        return CBQ_FAIL(err, CBQ_ERR_INTERNAL, "%s: unexpected error in the DICOM reader", folder);
    }
}

extern "C" int cbq_dicom_read_series(cbq_volume *vol, cbq_dicom_meta *meta, const char *path,
                                     const char *series_uid, cbq_error *err)
{
    std::memset(vol, 0, sizeof *vol);
    CBQ_TRY(cbq_volume_path_check(path, 1, err));
    try {
        dcmtk_init();
        return read_series(vol, meta, path, series_uid, err);
    } catch (const std::bad_alloc &) {
        cbq_volume_free(vol);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory reading the series", path);
    } catch (const std::exception &e) {
        cbq_volume_free(vol);
        return CBQ_FAIL(err, CBQ_ERR_INTERNAL, "%s: %s", path, e.what());
    } catch (...) {
        cbq_volume_free(vol);
        return CBQ_FAIL(err, CBQ_ERR_INTERNAL, "%s: unexpected error in the DICOM reader", path);
    }
}

extern "C" int cbq_dicom_looks_like(const char *path)
{
    std::error_code ec;
    return fs::is_directory(path, ec) || has_dicm_magic(path);
}

extern "C" const char *cbq_dicom_toolkit_version(void)
{
    return OFFIS_DCMTK_VERSION_STRING;
}

extern "C" int cbq_rtstruct_read(cbq_rtstruct *rs, const char *path, cbq_error *err)
{
    std::memset(rs, 0, sizeof *rs);
    CBQ_TRY(cbq_volume_path_check(path, 0, err));
    int rc;
    try {
        dcmtk_init();
        rc = read_rtstruct(rs, path, err);
    } catch (const std::bad_alloc &) {
        rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory reading the RTSTRUCT", path);
    } catch (...) {
        rc = CBQ_FAIL(err, CBQ_ERR_INTERNAL, "%s: unexpected error reading the RTSTRUCT", path);
    }
    if (rc != CBQ_OK)
        cbq_rtstruct_free(rs);
    return rc;
}

extern "C" void cbq_rtstruct_free(cbq_rtstruct *rs)
{
    for (size_t r = 0; r < rs->n_rois; r++) {
        for (size_t c = 0; c < rs->rois[r].n_contours; c++)
            free(rs->rois[r].contours[c].xyz);
        free(rs->rois[r].contours);
    }
    free(rs->rois);
    std::memset(rs, 0, sizeof *rs);
}
