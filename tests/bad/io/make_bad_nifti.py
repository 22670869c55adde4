"""make_bad_nifti.py - regenerates the small bad NIfTI files in this folder
(run from this folder with Debian's python3). Each file is broken in one
way; expected.txt lists the message fragment cbctiq must print for it."""
import gzip
import struct

import nibabel as nib
import numpy as np


def good_bytes(shape=(4, 4, 3), dtype=np.int16):
    img = nib.Nifti1Image(np.arange(np.prod(shape), dtype=dtype).reshape(shape), np.eye(4))
    img.header.set_qform(np.eye(4), 1)
    return img.header.binaryblock + b"\0" * 4 + img.get_fdata().astype(dtype).tobytes(order="F")


good = good_bytes()
open("truncated_data.nii", "wb").write(good[:352 + 40])
open("truncated_header.nii", "wb").write(good[:200])
open("wrong_magic.nii", "wb").write(good[:344] + b"xyz\0" + good[348:])
open("not_nifti.nii", "wb").write(b"this is a text file, not an image\n" * 20)
open("empty.nii", "wb").write(b"")
noise = np.random.default_rng(1).integers(-1000, 1000, (24, 24, 8)).astype(np.int16)
big = nib.Nifti1Image(noise, np.eye(4))
gz = gzip.compress(big.header.binaryblock + b"\0" * 4 + noise.tobytes(order="F"))
open("truncated_gzip.nii.gz", "wb").write(gz[: len(gz) // 2])
open("not_gzip.nii.gz", "wb").write(b"\x1f\x8b\x08\x00garbage" * 8)

# dim[1..3] = 32767: 35 TB of float32, promised by a 400-byte file.
b = bytearray(good)
struct.pack_into("<8h", b, 40, 3, 32767, 32767, 32767, 1, 1, 1, 1)
open("huge_dims.nii", "wb").write(bytes(b))
gzip.open("huge_dims.nii.gz", "wb").write(bytes(b))
# dim[2] = -5
b = bytearray(good)
struct.pack_into("<8h", b, 40, 3, 4, -5, 3, 1, 1, 1, 1)
open("negative_dim.nii", "wb").write(bytes(b))
# dim[0] = 9
b = bytearray(good)
struct.pack_into("<h", b, 40, 9)
open("bad_ndim.nii", "wb").write(bytes(b))
# 4D with 2 volumes
img = nib.Nifti1Image(np.zeros((3, 3, 3, 2), np.int16), np.eye(4))
nib.save(img, "four_d.nii")
# datatype RGB24
b = bytearray(good)
struct.pack_into("<hh", b, 70, 128, 24)
open("rgb.nii", "wb").write(bytes(b))
# NIfTI-2 whose dims multiply past 2^64 bytes.
h2 = nib.Nifti2Header()
h2.set_data_shape((2, 2, 2))
h2.set_data_dtype(np.int16)
blk = bytearray(h2.binaryblock)
struct.pack_into("<8q", blk, 16, 3, 1 << 40, 1 << 40, 1 << 40, 1, 1, 1, 1)
open("overflow_dims_nifti2.nii", "wb").write(bytes(blk) + b"\0" * 4 + b"\0" * 16)
# NaN voxels (float32)
nan = np.zeros((3, 3, 3), np.float32)
nan[1, 1, 1] = np.nan
nib.save(nib.Nifti1Image(nan, np.eye(4)), "nan_voxels.nii")
# sform whose first two voxel axes are parallel (rank 2): no inverse.
flat = nib.Nifti1Image(np.zeros((4, 4, 3), np.int16), None)
flat.set_sform(np.array([[1.0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]), code=1)
flat.set_qform(np.eye(4), code=0)
nib.save(flat, "rank_deficient_sform.nii")
# gzip member without its 8-byte trailer (CRC-32 + ISIZE), and one whose CRC
# is wrong: zlib only checks them when a read reaches them. 1.3 MB of zero
# voxels (1.3 kB compressed): more than zlib inflates ahead while reading
# the header, so only a read past the voxels reaches the trailer.
zeros = np.zeros((128, 128, 40), np.int16)
blank = nib.Nifti1Image(zeros, np.eye(4))
whole = gzip.compress(blank.header.binaryblock + b"\0" * 4 + zeros.tobytes(order="F"), mtime=0)
open("missing_gzip_trailer.nii.gz", "wb").write(whole[:-8])
bad_crc = bytearray(whole)
bad_crc[-8] ^= 0xFF
open("bad_crc.nii.gz", "wb").write(bytes(bad_crc))
# A .hdr/.img pair whose .img is missing, one whose .img is too short, and
# an Analyze 7.5 header (no NIfTI magic: orientation unknown, refused).
pair = nib.Nifti1Pair(np.arange(48, dtype=np.int16).reshape(4, 4, 3), np.eye(4))
open("pair_without_img.hdr", "wb").write(pair.header.binaryblock)
open("pair_short_img.hdr", "wb").write(pair.header.binaryblock)
open("pair_short_img.img", "wb").write(b"\0" * 40)
ana = nib.AnalyzeImage(np.zeros((4, 4, 3), np.int16), np.eye(4))
open("analyze.hdr", "wb").write(ana.header.binaryblock)
open("analyze.img", "wb").write(b"\0" * 96)
