"""`nvcaffe summary`: what a porting user reads first about a net. Per layer its type, top shapes,
parameter count, multiply-adds (Layer.multiply_adds) and activation memory; then the totals.

    from nvcaffe_py import summary
    rows = summary.summarize(net)
    print(summary.format_table(rows))

Parameters are the values in the layer's parameter blobs (BatchNorm's statistics included), a
blob shared with an earlier layer counted there only. Activation memory is the bytes of the tops
a layer writes into memory of their own, in the net's dtype: an in-place top and a top that views
a bottom (Split, Reshape, Flatten, a one-input Concat) take none.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class LayerSummary:
    name: str
    type: str
    top_shapes: tuple
    params: int
    multiply_adds: int
    activation_bytes: int


def summarize(net) -> list:
    """One LayerSummary per layer of the net, at the shapes it has now."""
    rows, counted = [], []
    for name, layer, bottom, top in zip(net.layer_names, net.layers, net.bottom_vecs, net.top_vecs):
        params = 0
        for blob in layer.blobs:
            if not any(blob.shares_data_with(seen) for seen in counted):
                counted.append(blob)
                params += blob.count()
        held_elsewhere = list(bottom) + list(layer.blobs)
        own = [t for t in top if not any(t.shares_data_with(other) for other in held_elsewhere)]
        rows.append(LayerSummary(name, layer.type, tuple(t.shape for t in top), params,
                                 layer.multiply_adds(bottom, top), sum(t.count() for t in own) * net.dtype.itemsize))
    return rows


def _shapes(shapes) -> str:
    return ", ".join("x".join(map(str, shape)) or "scalar" for shape in shapes) or "-"


def _count(n: int) -> str:
    """1234567 -> '1.23M'."""
    for unit, size in (("G", 10 ** 9), ("M", 10 ** 6), ("k", 10 ** 3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def _bytes(n: int) -> str:
    for unit, size in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def format_table(rows) -> str:
    """The rows as an aligned text table, with a line of totals."""
    header = ("layer", "type", "top shapes", "params", "multiply-adds", "activations")
    lines = [(r.name, r.type, _shapes(r.top_shapes), _count(r.params), _count(r.multiply_adds),
              _bytes(r.activation_bytes)) for r in rows]
    lines.append(("total", "", "", _count(sum(r.params for r in rows)), _count(sum(r.multiply_adds for r in rows)),
                  _bytes(sum(r.activation_bytes for r in rows))))
    widths = [max(len(line[i]) for line in [header] + lines) for i in range(len(header))]
    right = {3, 4, 5}  # numbers align right

    def render(line):
        cells = [cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(line, widths))]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([render(header), rule] + [render(line) for line in lines[:-1]] + [rule, render(lines[-1])])
