"""Blob (shape, capacity, sharing, legacy accessors) and SyncedArray's host-side states."""
import numpy as np
import pytest

from nvcaffe_py import synced_array
from nvcaffe_py.blob import Blob
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.synced_array import AT_DEVICE, AT_HOST, SYNCED, UNINITIALIZED, SyncedArray


def test_shape_spellings_and_defaults():
    assert Blob(2, 3, 4).shape == (2, 3, 4)
    assert Blob([2, 3]).shape == (2, 3)
    blob = Blob(2, 3)
    blob.reshape(np.array([4, 5]))
    assert blob.shape == (4, 5) and blob.data.shape == (4, 5) and blob.diff.shape == (4, 5)
    assert blob.dtype == np.float32 and blob.data.dtype == np.float32
    assert np.all(blob.data == 0) and np.all(blob.diff == 0)
    # A blob with no axes is a scalar: one element.
    assert Blob().count == 1 and Blob().data.shape == ()


def test_reshape_keeps_buffers_while_capacity_suffices():
    blob = Blob(2, 3, 4)
    blob.data[...] = np.arange(24).reshape(2, 3, 4)
    old_view = blob.data
    blob.reshape(3, 4)  # smaller: same buffer, leading elements kept
    assert np.shares_memory(old_view, blob.data)
    np.testing.assert_array_equal(blob.data.ravel(), np.arange(12))
    blob.reshape(4, 6)  # back up to the capacity: still the same buffer
    assert np.shares_memory(old_view, blob.data)
    blob.data[0, 0] = 100  # views handed out earlier see writes
    assert old_view[0, 0, 0] == 100
    blob.reshape(5, 5)  # beyond the capacity: a new buffer
    assert not np.shares_memory(old_view, blob.data)


def test_count_is_a_number_and_a_range_of_axes():
    blob = Blob(2, 3, 4, 5)
    assert blob.count == 120 and blob.count + 1 == 121  # pycaffe: a plain number
    assert blob.count() == 120  # Caffe: count()
    assert blob.count(1) == 60 and blob.count(2) == 20  # count(start)
    assert blob.count(1, 3) == 12 and blob.count(2, 2) == 1  # count(start, end)
    assert blob.num_axes == 4


def test_legacy_num_channels_height_width():
    blob = Blob(2, 3, 4, 5)
    assert (blob.num, blob.channels, blob.height, blob.width) == (2, 3, 4, 5)
    # Missing axes read as 1, as Caffe's LegacyShape.
    short = Blob(7, 8)
    assert (short.num, short.channels, short.height, short.width) == (7, 8, 1, 1)
    assert short.legacy_shape(-1) == 8 and short.legacy_shape(-3) == 1


@pytest.mark.parametrize("axis, expected", [(0, 0), (2, 2), (-1, 2), (-3, 0)])
def test_canonical_axis_index(axis, expected):
    assert Blob(2, 3, 4).canonical_axis_index(axis) == expected


@pytest.mark.parametrize("axis", [3, -4])
def test_canonical_axis_index_out_of_range(axis):
    with pytest.raises(CaffeError, match=f"axis {axis} out of range.*\\(2, 3, 4\\)"):
        Blob(2, 3, 4).canonical_axis_index(axis)


@pytest.mark.parametrize("shape, message", [((2, -1), "negative"), ((1,) * 33, "at most 32")])
def test_bad_shapes(shape, message):
    with pytest.raises(CaffeError, match=message):
        Blob(shape)


def test_share_data_and_share_diff():
    a, b = Blob(2, 3), Blob(6)
    b.share_data(a)
    assert b.shares_data_with(a)
    a.data[...] = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(b.data, np.arange(6))
    # The diffs stay separate until they are shared too.
    a.diff[...] = 1
    assert np.all(b.diff == 0)
    b.share_diff(a)
    b.diff[...] = 2
    assert np.all(a.diff == 2)


def test_sharing_needs_equal_counts():
    with pytest.raises(CaffeError, match="cannot share data"):
        Blob(2, 3).share_data(Blob(5))
    with pytest.raises(CaffeError, match="cannot share diff"):
        Blob(2, 3).share_diff(Blob(7))


def test_data_and_diff_assignment_writes_in_place():
    blob = Blob(2, 2)
    view = blob.data
    blob.data = [[1, 2], [3, 4]]
    blob.diff = 5
    assert view[1, 1] == 4 and np.all(blob.diff == 5)


def test_float64_blob():
    blob = Blob(3, 2, dtype=np.float64)
    blob.data[...] = 1 / 3
    blob.diff[...] = [[1, 2], [3, 4], [5, 6]]
    assert blob.data.dtype == np.float64 and blob.diff.dtype == np.float64
    assert blob.data[0, 0] == 1 / 3  # not rounded through float32
    blob.reshape(6)
    assert blob.data.dtype == np.float64


def test_synced_array_host_states():
    array = SyncedArray(5, np.float64)
    assert array.head == UNINITIALIZED and array.size == 5
    host = array.host_readonly()  # first touch allocates zeros on the host
    assert array.head == AT_HOST and host.dtype == np.float64 and np.all(host == 0)
    array.host[...] = 3
    assert array.head == AT_HOST and np.all(array.host_readonly() == 3)
    assert array.host is host  # one host buffer, never reallocated


class FakeDeviceMemory:
    """Stands in for the CUDA backend's memory module with NumPy arrays, counting copies, so the
    lazy synchronisation logic is tested without a GPU."""

    def __init__(self):
        self.copies = []

    def empty(self, size, dtype):
        return np.full(size, np.nan, dtype)

    def fill_zero(self, device):
        device[...] = 0

    def copy_to_device(self, device, host):
        self.copies.append("to_device")
        device[...] = host

    def copy_to_host(self, host, device):
        self.copies.append("to_host")
        host[...] = device


@pytest.fixture
def fake_device(monkeypatch):
    memory = FakeDeviceMemory()
    monkeypatch.setattr(synced_array, "memory", memory)
    return memory


def test_synced_array_copies_only_when_the_other_side_is_stale(fake_device):
    array = SyncedArray(4)
    array.host[...] = [1, 2, 3, 4]
    device = array.device_readonly()  # host -> device once, both sides now agree
    assert array.head == SYNCED and fake_device.copies == ["to_device"]
    np.testing.assert_array_equal(device, [1, 2, 3, 4])
    array.host_readonly()
    array.device_readonly()
    assert fake_device.copies == ["to_device"]  # nothing stale, nothing copied
    array.device[...] = 7  # a device write makes the host stale
    assert array.head == AT_DEVICE
    np.testing.assert_array_equal(array.host_readonly(), [7, 7, 7, 7])
    assert array.head == SYNCED and fake_device.copies == ["to_device", "to_host"]
    array.host[0] = 0  # a host write makes the device stale
    assert array.head == AT_HOST
    np.testing.assert_array_equal(array.device_readonly(), [0, 7, 7, 7])


def test_synced_array_uninitialized_device_is_zeroed_without_a_copy(fake_device):
    array = SyncedArray(3)
    np.testing.assert_array_equal(array.device_readonly(), 0)
    assert array.head == AT_DEVICE and fake_device.copies == []
    np.testing.assert_array_equal(array.host_readonly(), 0)


def test_readonly_host_views_keep_the_device_copy_and_refuse_writes(fake_device):
    blob = Blob(2, 2)
    blob.data[...] = [[1, 2], [3, 4]]
    blob._data.device_readonly()  # uploaded: both sides agree
    view = blob.data_readonly()
    np.testing.assert_array_equal(view, [[1, 2], [3, 4]])
    assert blob._data.head == SYNCED  # a read leaves the device copy valid ...
    with pytest.raises(ValueError, match="read-only"):
        view[0, 0] = 9
    blob.data[0, 0] = 9  # ... a write through .data does not
    assert blob._data.head == AT_HOST
    assert not blob.diff_readonly().flags.writeable and blob.diff_readonly().shape == (2, 2)
