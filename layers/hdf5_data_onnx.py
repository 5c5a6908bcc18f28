"""ONNX translation of HDF5Output: refused, as it writes files (HDF5Data, a data layer, is refused
by the exporter itself)."""
from nvcaffe_py.onnx_translation import onnx_translation


@onnx_translation("HDF5Output")
def hdf5_output(layer, g):
    raise g.refuse("it writes its bottoms to an HDF5 file, which a graph cannot")
