"""What an X-ray file may be: suffixes, modalities, sizes and plausible geometry."""

from __future__ import annotations

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".npy", ".jpg", ".jpeg")
#: modalities whose images are cross-sections of a volume, never projections
CROSS_SECTIONAL = ("CT", "MR", "PT", "NM")
#: projection radiography modalities (an image plane in their header does not make them slices)
PROJECTION = ("XA", "RF", "DX", "CR", "MG", "RG", "PX", "IO")
REDUCEFNS = ("max", "sum")
#: the smallest image side accepted (nothing can be registered on fewer pixels)
MIN_SIDE_PX = 8
#: the most pixels (all frames together) decoded from one file: 2 GiB as float32
MAX_PIXELS = 1 << 29
#: bytes decoding frames takes per pixel: the decoded array, its float32 copy and a flipped copy
DECODE_BYTES_PER_PX = 12
#: plausible source-to-detector distances (mm): clinical C-arms are ~900-1300 mm
SDD_RANGE_MM = (10.0, 10000.0)
#: plausible detector pixel spacings (mm per pixel)
SPACING_RANGE_MM = (1e-3, 100.0)
#: the principal point may lie at most this many detector extents from the detector centre
MAX_OFFSET_EXTENTS = 5.0
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
#: PhotometricInterpretation values this reader turns into grey, by SamplesPerPixel
PHOTOMETRIC = {
    1: ("MONOCHROME1", "MONOCHROME2"),
    3: ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT"),
}
