"""Activation memory for a forward-only pass: blobs whose values are never needed at the same time
share one buffer (the last pass of the deploy-time forward, inference_plan.py).

A buffer's value lives from the step that first writes it to the last step that reads or writes
it; blobs that hold one buffer by the layers' own doing (in place, Split, Reshape, Flatten) count
as one value. Going through the steps in order, each new value takes a free slot (the smallest
that is big enough, else the biggest, which grows), and a value's slot is freed after its last
step. A layer that may run in place (`Layer.in_place_capable`) gives its top the slot of its
bottom[0] when that value ends at this step, so it writes over its input. Fixed values (what the
user reads, inputs, what no step writes) keep their own buffers. Slots are SyncedArrays, so the
device side is shared alike.
"""
from .synced_array import SyncedArray


def share_buffers(steps, fixed, dtype, others=()) -> int:
    """Give the steps' blobs shared buffers; `steps` are (index, layer, bottoms, tops) in order,
    `fixed` the data storages to leave alone; `others`: blobs no step names that hold a buffer
    with one that does (a Split's tops read inside a oneDNN segment) and move with it. Returns the
    elements of the shared slots."""
    first, last, size, holders = {}, {}, {}, {}
    for position, (_, _, bottoms, tops) in enumerate(steps):
        for blob in list(bottoms) + list(tops):
            storage = blob.data_storage
            if storage not in first and blob in bottoms:
                fixed = fixed | {storage}  # read before any step writes it: an input
            first.setdefault(storage, position)
            last[storage] = position
            size[storage] = max(size.get(storage, 0), blob.count)
            holders.setdefault(storage, []).append(blob)
    slot_of, slots = {}, Slots()
    for position, (_, layer, bottoms, tops) in enumerate(steps):
        for top in tops:
            storage = top.data_storage
            if storage in fixed or storage in slot_of or first[storage] != position:
                continue
            reused = bottoms[0].data_storage if layer.in_place_capable and bottoms else None
            if reused in slot_of and last[reused] == position and reused is not storage:
                slot = slot_of[reused]
                last[reused] = -1  # its slot goes on with the top's value
                slots.sizes[slot] = max(slots.sizes[slot], size[storage])
            else:
                slot = slots.take(size[storage])
            slot_of[storage] = slot
        for blob in list(bottoms) + list(tops):
            storage = blob.data_storage
            if last.get(storage) == position and storage in slot_of:
                slots.give(slot_of[storage])
                last[storage] = -1
    for blob in others:
        if blob.data_storage in slot_of and all(blob is not held for held in holders[blob.data_storage]):
            holders[blob.data_storage].append(blob)
    buffers = [SyncedArray(n, dtype) for n in slots.sizes]
    for storage, slot in slot_of.items():
        for blob in holders[storage]:
            blob.use_data_storage(buffers[slot])
    return sum(slots.sizes)


class Slots:
    """Buffers handed out by value lifetimes (here and in oneDNN segments' work buffers): `take`
    gives a free slot for `size` elements, the smallest that is big enough, else the biggest free
    one (which grows), else a new one; `give` frees one; `sizes` are their elements."""

    def __init__(self):
        self.sizes, self._free = [], []

    def take(self, size) -> int:
        fitting = sorted((self.sizes[slot], slot) for slot in self._free if self.sizes[slot] >= size)
        if fitting or self._free:
            slot = fitting[0][1] if fitting else max(self._free, key=self.sizes.__getitem__)
            self._free.remove(slot)
        else:
            slot = len(self.sizes)
            self.sizes.append(0)
        self.sizes[slot] = max(self.sizes[slot], size)
        return slot

    def give(self, slot):
        self._free.append(slot)
