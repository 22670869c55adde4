"""dicomgen.py - writes small synthetic CT series with pydicom for the tests
and the benchmark: chosen orientation, spacing, rescale, slice order and
file names, plus RTSTRUCT files. Not a reference implementation of anything:
the tests compare cbctiq with what pydicom reads back from these files."""
import os

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian,
                         RTStructureSetStorage, generate_uid)


def _meta(sop_class, sop_uid, ts):
    m = FileMetaDataset()
    m.MediaStorageSOPClassUID = sop_class
    m.MediaStorageSOPInstanceUID = sop_uid
    m.TransferSyntaxUID = ts
    m.ImplementationClassUID = generate_uid()
    return m


def write_series(folder, pixels, iop, first_pos, spacing, slice_step, slope=1.0, intercept=0.0,
                 signed=True, ts=ImplicitVRLittleEndian, rng=None, descending=False,
                 series_uid=None, frame_uid=None, description="synthetic CT", names=None,
                 positions=None, extra=None):
    """pixels: [n, rows, cols] stored values; iop: 6 direction cosines (LPS);
    first_pos: IPP of pixels[0]; spacing: (between rows, between columns);
    slice_step: mm between slices along the normal. Writes one file per
    slice with random names (or `names`), in shuffled order; `extra`: more
    attributes for every slice (e.g. PixelPaddingValue). Returns UIDs."""
    os.makedirs(folder, exist_ok=True)
    rng = rng or np.random.default_rng(0)
    series_uid = series_uid or generate_uid()
    frame_uid = frame_uid or generate_uid()
    study_uid = generate_uid()
    r, c = np.array(iop[:3], float), np.array(iop[3:], float)
    normal = np.cross(r, c)
    n = pixels.shape[0]
    order = rng.permutation(n)
    sop_uids = []
    for idx in order:
        pos = positions[idx] if positions is not None else \
            np.asarray(first_pos, float) + idx * slice_step * normal
        sop = generate_uid()
        sop_uids.append(sop)
        name = names[idx] if names else f"{rng.integers(1 << 40):x}.dcm"
        ds = FileDataset(os.path.join(folder, name), {}, file_meta=_meta(CTImageStorage, sop, ts),
                         preamble=b"\0" * 128)
        ds.is_little_endian = True
        ds.is_implicit_VR = ts == ImplicitVRLittleEndian
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.Modality = "CT"
        ds.Manufacturer = "cbctiq-test"
        ds.SeriesDescription = description
        ds.PatientName = "Phantom^Test"
        ds.PatientID = "T1"
        # InstanceNumber deliberately disagrees with the geometric order.
        ds.InstanceNumber = int(n - idx if not descending else idx + 1)
        ds.ImageOrientationPatient = [f"{v:.10g}" for v in iop]
        ds.ImagePositionPatient = [f"{v:.10g}" for v in pos]
        ds.PixelSpacing = [f"{spacing[0]:.10g}", f"{spacing[1]:.10g}"]
        ds.SliceThickness = f"{abs(slice_step):.10g}"
        ds.RescaleSlope = f"{slope:.10g}"
        ds.RescaleIntercept = f"{intercept:.10g}"
        ds.Rows, ds.Columns = pixels.shape[1], pixels.shape[2]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1 if signed else 0
        ds.PixelData = pixels[idx].astype(np.int16 if signed else np.uint16).tobytes()
        for key, value in (extra or {}).items():
            setattr(ds, key, value)
        ds.save_as(os.path.join(folder, name), write_like_original=False)
    return {"series_uid": series_uid, "frame_uid": frame_uid, "sop_uids": sop_uids}


def write_rtstruct(path, series_uid, frame_uid, rois):
    """rois: list of (number, name, [contour as [m, 3] LPS points, ...])."""
    sop = generate_uid()
    ds = FileDataset(path, {}, file_meta=_meta(RTStructureSetStorage, sop, ExplicitVRLittleEndian),
                     preamble=b"\0" * 128)
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    ds.SOPClassUID = RTStructureSetStorage
    ds.SOPInstanceUID = sop
    ds.Modality = "RTSTRUCT"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    series = Dataset()
    series.SeriesInstanceUID = series_uid
    study = Dataset()
    study.RTReferencedSeriesSequence = Sequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = frame_uid
    frame.RTReferencedStudySequence = Sequence([study])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame])
    ssr, rcs = [], []
    for number, name, contours in rois:
        it = Dataset()
        it.ROINumber = number
        it.ROIName = name
        it.ReferencedFrameOfReferenceUID = frame_uid
        ssr.append(it)
        rc = Dataset()
        rc.ReferencedROINumber = number
        seq = []
        for pts in contours:
            ct = Dataset()
            ct.ContourGeometricType = "CLOSED_PLANAR"
            ct.NumberOfContourPoints = len(pts)
            ct.ContourData = [f"{v:.6f}" for v in np.asarray(pts, float).ravel()]
            seq.append(ct)
        rc.ContourSequence = Sequence(seq)
        rcs.append(rc)
    ds.StructureSetROISequence = Sequence(ssr)
    ds.ROIContourSequence = Sequence(rcs)
    ds.save_as(path, write_like_original=False)


PADDING_HU = -1024.0  # what cbctiq makes of padding: air


def stored_values(ds):
    """The stored values: pydicom's pixel_array (2.3) keeps every bit of the
    cell, but only the low BitsStored bits are the value (PS3.3 C.7.6.3.1.1,
    HighBit = BitsStored - 1); the bits above are masked off and signed values
    sign-extended from bit BitsStored - 1, as dcm2niix reads them."""
    cells = ds.pixel_array.astype(np.int64)
    bits = int(ds.BitsStored)
    if bits >= 8 * ds.pixel_array.dtype.itemsize:
        return cells
    low = cells & ((1 << bits) - 1)
    if int(ds.PixelRepresentation) == 1:
        low = np.where(low >= 1 << (bits - 1), low - (1 << bits), low)
    return low


def padding_mask(ds):
    """Stored values marked as padding (PS3.3 C.7.5.1.1.2: PixelPaddingValue,
    up to PixelPaddingRangeLimit when given)."""
    stored = stored_values(ds)
    if "PixelPaddingValue" not in ds:
        return np.zeros(stored.shape, bool)
    a = int(ds.PixelPaddingValue)
    b = int(ds.get("PixelPaddingRangeLimit", a))
    return (stored >= min(a, b)) & (stored <= max(a, b))


def _to_hu(ds):
    """pydicom's modality LUT, with padding read as air."""
    hu = pydicom.pixel_data_handlers.util.apply_modality_lut(stored_values(ds), ds)
    hu = hu.astype(np.float64)
    hu[padding_mask(ds)] = PADDING_HU
    return hu


def read_back(folder):
    """What pydicom reads: slices sorted along the normal, HU, LPS affine
    (DICOM PS3.3 C.7.6.2.1.1), converted to RAS+ as NIfTI defines it."""
    dss = [pydicom.dcmread(os.path.join(folder, f)) for f in sorted(os.listdir(folder))]
    dss = [d for d in dss if "PixelData" in d]
    iop = np.array(dss[0].ImageOrientationPatient, float)
    r, c = iop[:3], iop[3:]
    normal = np.cross(r, c)
    dss.sort(key=lambda d: float(np.dot(np.array(d.ImagePositionPatient, float), normal)))
    hu = np.stack([_to_hu(d) for d in dss])  # [k, row, col]
    ps = np.array(dss[0].PixelSpacing, float)
    p0 = np.array(dss[0].ImagePositionPatient, float)
    pn = np.array(dss[-1].ImagePositionPatient, float)
    # one slice: its thickness is the only spacing there is
    step = (pn - p0) / (len(dss) - 1) if len(dss) > 1 else normal * float(dss[0].SliceThickness)
    lps = np.eye(4)
    lps[:3, 0] = r * ps[1]
    lps[:3, 1] = c * ps[0]
    lps[:3, 2] = step
    lps[:3, 3] = p0
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    return hu.transpose(2, 1, 0), ras, dss  # [i=col, j=row, k]


ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
PARAMETRIC_MAP = "1.2.840.10008.5.1.4.1.1.30"


def _item(**attrs):
    item = Dataset()
    for key, value in attrs.items():
        setattr(item, key, value)
    return item


def write_enhanced(path, frames, iop, positions, spacing, sop_class=ENHANCED_CT, rescale=None,
                   float_data=None, orientation_per_frame=False, thickness=1.0, ts=None,
                   frame_uid=None, study_uid=None, series_uid=None):
    """One enhanced multi-frame object: frames [n, rows, cols] in file
    order, frame f at positions[f] (LPS), geometry in the functional groups
    (PS3.3 C.7.6.16): PlanePositionSequence per frame, PlaneOrientation
    and PixelMeasures shared (orientation per frame when asked). rescale:
    None, one (slope, intercept) shared, or a list of them per frame.
    float_data: None (int16 PixelData), "float" (FloatPixelData) or
    "double" (DoubleFloatPixelData), as a Parametric Map holds them."""
    n, rows, cols = frames.shape
    sop = generate_uid()
    ts = ts or ExplicitVRLittleEndian
    ds = FileDataset(path, {}, file_meta=_meta(sop_class, sop, ts), preamble=b"\0" * 128)
    ds.is_little_endian = True
    ds.is_implicit_VR = ts == ImplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.FrameOfReferenceUID = frame_uid or generate_uid()
    ds.Modality = {ENHANCED_CT: "CT", ENHANCED_MR: "MR"}.get(sop_class, "OT")
    ds.Manufacturer = "cbctiq-test"
    ds.SeriesDescription = "synthetic enhanced"
    ds.PatientName = "Phantom^Test"
    ds.PatientID = "T1"
    ds.NumberOfFrames = n
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    iop_text = [f"{v:.10g}" for v in iop]
    orientation = Sequence([_item(ImageOrientationPatient=iop_text)])
    shared = _item(PixelMeasuresSequence=Sequence([_item(
        PixelSpacing=[f"{spacing[0]:.10g}", f"{spacing[1]:.10g}"],
        SliceThickness=f"{thickness:.10g}")]))
    if not orientation_per_frame:
        shared.PlaneOrientationSequence = orientation
    if rescale is not None and not isinstance(rescale, list):
        shared.PixelValueTransformationSequence = Sequence([_item(
            RescaleSlope=f"{rescale[0]:.10g}", RescaleIntercept=f"{rescale[1]:.10g}",
            RescaleType="HU")])
    per_frame = []
    for f in range(n):
        item = _item(PlanePositionSequence=Sequence([_item(
            ImagePositionPatient=[f"{v:.10g}" for v in positions[f]])]))
        if orientation_per_frame:
            item.PlaneOrientationSequence = Sequence([_item(ImageOrientationPatient=iop_text)])
        if isinstance(rescale, list):
            item.PixelValueTransformationSequence = Sequence([_item(
                RescaleSlope=f"{rescale[f][0]:.10g}", RescaleIntercept=f"{rescale[f][1]:.10g}",
                RescaleType="HU")])
        per_frame.append(item)
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    if float_data == "float":
        ds.BitsAllocated = 32
        ds.FloatPixelData = frames.astype("<f4").tobytes()
    elif float_data == "double":
        ds.BitsAllocated = 64
        ds.DoubleFloatPixelData = frames.astype("<f8").tobytes()
    else:
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1
        ds.PixelData = frames.astype("<i2").tobytes()
    ds.save_as(path, write_like_original=False)
    return ds


def frame_macro(ds, f, macro):
    """The functional-group macro that applies to frame f: per-frame, else shared."""
    per = ds.PerFrameFunctionalGroupsSequence[f]
    if macro in per:
        return getattr(per, macro)[0]
    return getattr(ds.SharedFunctionalGroupsSequence[0], macro)[0]


def read_back_enhanced(path):
    """What pydicom reads from an enhanced object: frames sorted along the
    normal, each through its own rescale, and the RAS+ affine."""
    ds = pydicom.dcmread(path)
    n = int(ds.NumberOfFrames)
    arr = ds.pixel_array.reshape(n, ds.Rows, ds.Columns).astype(np.float64)
    iop = np.array(frame_macro(ds, 0, "PlaneOrientationSequence").ImageOrientationPatient, float)
    r, c = iop[:3], iop[3:]
    normal = np.cross(r, c)
    ipp = [np.array(frame_macro(ds, f, "PlanePositionSequence").ImagePositionPatient, float)
           for f in range(n)]
    order = sorted(range(n), key=lambda f: float(np.dot(ipp[f], normal)))
    hu = []
    for f in order:
        v = arr[f]
        per = ds.PerFrameFunctionalGroupsSequence[f]
        shared = ds.SharedFunctionalGroupsSequence[0]
        if "PixelValueTransformationSequence" in per or \
                "PixelValueTransformationSequence" in shared:
            t = frame_macro(ds, f, "PixelValueTransformationSequence")
            v = v * float(t.RescaleSlope) + float(t.RescaleIntercept)
        hu.append(v)
    ps = np.array(frame_macro(ds, 0, "PixelMeasuresSequence").PixelSpacing, float)
    lps = np.eye(4)
    lps[:3, 0] = r * ps[1]
    lps[:3, 1] = c * ps[0]
    lps[:3, 2] = (ipp[order[-1]] - ipp[order[0]]) / (n - 1)
    lps[:3, 3] = ipp[order[0]]
    return np.stack(hu).transpose(2, 1, 0), np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
