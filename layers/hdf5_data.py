"""HDF5Data and HDF5Output: arrays from and to HDF5 files (h5py).

HDF5Data (`hdf5_data_param { source batch_size shuffle }`): `source` is a text file listing .h5
files (whitespace separated, as Caffe reads it); every top is the dataset of the same name, all
with the same number of rows. A file is loaded whole; batches take the next rows and move on to
the next file at the end of one, cycling. `shuffle` shuffles the file order at every pass and the
row order within each file. In a data-parallel run a TRAIN-phase layer takes only its rank's rows,
dealt by their running offset as Caffe's HDF5DataLayer::Skip (nvcaffe_py.scaleout.dealing).

HDF5Output (`hdf5_output_param { file_name }`): writes its two bottoms to datasets "data" and
"label" of `file_name` (created, or truncated, at setup). Caffe can write only one batch (its
second forward fails); here each forward appends its rows, and the file is closed in between,
so it is complete and readable after every forward.
"""
import numpy as np

from nvcaffe_py import files, hdf5_format, mode, rng
from nvcaffe_py.conformance import Exempt
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.layer import Layer
from nvcaffe_py.lazy_import import h5py
from nvcaffe_py.registry import register_layer
from nvcaffe_py.scaleout import dealing

OUTPUT_DATASETS = ("data", "label")


def _read_source_list(source):
    try:
        return files.read_regular(source).decode("utf-8").split()
    except (CaffeError, UnicodeDecodeError) as exc:
        raise CaffeError(f"cannot read HDF5 source list: {exc}") from None


@register_layer("HDF5Data")
class HDF5DataLayer(Layer):
    exact_num_bottom = 0
    min_top = 1
    cases = Exempt("reads HDF5 files: tests/test_hdf5.py")

    def setup(self, bottom, top):
        p = self.layer_param.hdf5_data_param
        if p.batch_size <= 0:
            raise self.error("hdf5_data_param.batch_size must be positive")
        self.filenames = _read_source_list(p.source)
        if not self.filenames:
            raise self.error(f"'{p.source}' must list at least one HDF5 file")
        self._random = np.random.default_rng(int(rng.generator().integers(2 ** 63)))
        self.file_order = np.arange(len(self.filenames))
        if p.shuffle:
            self._random.shuffle(self.file_order)
        self.current_file = 0
        self.item_shapes = None
        self._load(self.filenames[self.file_order[0]])
        # The running offset of the next row (counting every rank's), and this rank's place.
        self.offset = 0
        self.rank, self.ranks = (mode.solver_rank(), mode.solver_count()) if dealing.applies(self.phase) else (0, 1)
        if self.ranks > 1:
            dealing.check_enough(self._total_rows(), f"HDF5 source '{p.source}'")

    def _total_rows(self):
        total, name = 0, self.layer_param.top[0]
        for path in self.filenames:
            try:
                with h5py.File(path, "r") as f:
                    total += len(f[name])
            except (OSError, KeyError) as exc:
                raise self.error(f"cannot count the rows of dataset '{name}' in HDF5 file '{path}': {exc}") from None
        return total

    def _load(self, path):
        names = list(self.layer_param.top)
        try:
            files.check_regular(path)
            with h5py.File(path, "r") as f:
                arrays = []
                for name in names:
                    if name not in f:
                        raise CaffeError(f"HDF5 file '{path}' has no dataset '{name}' (one per top)")
                    dataset = hdf5_format.member(path, f, name, h5py.Dataset)
                    arrays.append(np.asarray(dataset, dtype=self.dtype))
        except OSError as exc:
            raise self.error(f"cannot read HDF5 file '{path}': {exc}") from None
        except CaffeError as exc:
            raise self.error(str(exc)) from None
        for name, array in zip(names, arrays):
            if array.ndim < 1 or len(array) != len(arrays[0]) or len(array) == 0:
                raise self.error(f"HDF5 file '{path}': dataset '{name}' has shape {array.shape}; every dataset "
                                 f"needs the same, nonzero number of rows ({len(arrays[0])} in '{names[0]}')")
        shapes = [a.shape[1:] for a in arrays]
        if self.item_shapes is not None and shapes != self.item_shapes:
            raise self.error(f"HDF5 file '{path}' has rows of shapes {shapes}, but the first file had {self.item_shapes}")
        self.item_shapes = shapes
        self.arrays = arrays
        self.rows = len(arrays[0])
        self.permutation = np.arange(self.rows)
        if self.layer_param.hdf5_data_param.shuffle:
            self._random.shuffle(self.permutation)
        self.current_row = 0

    def reshape(self, bottom, top):
        batch = self.layer_param.hdf5_data_param.batch_size
        for blob, shape in zip(top, self.item_shapes):
            blob.reshape((batch,) + shape)

    def _end_of_file(self):
        """Caffe's HDF5DataLayer::Next at the last row: the next file, or this one again."""
        shuffle = self.layer_param.hdf5_data_param.shuffle
        if len(self.filenames) > 1:
            self.current_file += 1
            if self.current_file == len(self.filenames):
                self.current_file = 0
                if shuffle:
                    self._random.shuffle(self.file_order)
            self._load(self.filenames[self.file_order[self.current_file]])
        else:
            self.current_row = 0
            if shuffle:
                self._random.shuffle(self.permutation)

    def forward_cpu(self, bottom, top):
        batch = self.layer_param.hdf5_data_param.batch_size
        filled = 0
        while filled < batch:
            # This rank's rows of the current file from current_row on, as many as the batch needs.
            need = batch - filled
            first = self.current_row + (self.rank - self.offset) % self.ranks
            rows = self.permutation[first:self.rows:self.ranks][:need]
            for blob, array in zip(top, self.arrays):
                blob.data[filled:filled + len(rows)] = array[rows]
            filled += len(rows)
            stop = first + (len(rows) - 1) * self.ranks + 1 if len(rows) == need else self.rows
            self.offset += stop - self.current_row
            self.current_row = stop
            if self.current_row == self.rows:
                self._end_of_file()


@register_layer("HDF5Output")
class HDF5OutputLayer(Layer):
    exact_num_bottom = 2
    exact_num_top = 0
    cases = Exempt("writes an HDF5 file: tests/test_hdf5.py")

    def setup(self, bottom, top):
        self.file_name = self.layer_param.hdf5_output_param.file_name
        if not self.file_name:
            raise self.error("hdf5_output_param.file_name is not set")
        try:
            h5py.File(self.file_name, "w").close()
        except OSError as exc:
            raise self.error(f"cannot create HDF5 file '{self.file_name}': {exc}") from None

    def forward_cpu(self, bottom, top):
        if bottom[0].num != bottom[1].num:
            raise self.error(f"data has {bottom[0].num} rows but label has {bottom[1].num}")
        with h5py.File(self.file_name, "a") as f:
            for name, blob in zip(OUTPUT_DATASETS, bottom):
                if name not in f:
                    f.create_dataset(name, shape=(0,) + blob.shape[1:], maxshape=(None,) + blob.shape[1:],
                                     dtype=blob.dtype, chunks=True)
                dataset = f[name]
                if dataset.shape[1:] != blob.shape[1:]:
                    raise self.error(f"bottom '{name}' has rows of shape {blob.shape[1:]}, but earlier "
                                     f"batches in '{self.file_name}' had {dataset.shape[1:]}")
                start = dataset.shape[0]
                dataset.resize(start + blob.shape[0], axis=0)
                dataset[start:] = blob.data_readonly()

    def backward_cpu(self, top, propagate_down, bottom):
        pass  # nothing flows back from a file, but force_backward still asks (Caffe's is empty too)
