"""The device random stream: Philox4x32-10 (philox.cuh), keyed by a 64-bit seed, with a stream
number that advances on every call so that no two calls share a counter.

The seed follows the host stream (`nvcaffe_py.rng`, which the solver's random_seed sets): after
`set_random_seed(s)` the device stream restarts from seed s, so runs repeat. `philox4x32_10` is
the same generator in NumPy, to check the device and to reproduce a device draw on the host.
"""
import numpy as np

from ... import rng
from . import kernels

_kernels = kernels.Source(__file__, "rng.cu")
_state = {"generator": None, "seed": 0, "stream": 0}
_MASK32 = np.uint64(0xFFFFFFFF)


def next_stream():
    """(seed, stream) for one call's draws."""
    generator = rng.generator()
    if _state["generator"] is not generator:  # the host stream was (re)seeded
        seed = rng.seed()
        if seed is None:
            seed = int(generator.integers(0, 2 ** 63))
        _state.update(generator=generator, seed=seed & (2 ** 64 - 1), stream=0)
    _state["stream"] += 1
    return _state["seed"], _state["stream"]


def bits(out, seed=None, stream=None):
    """Fill a uint32 device array with raw draws (the next stream unless both are given)."""
    if seed is None or stream is None:
        seed, stream = next_stream()
    n = out.size
    _kernels.get("rng_bits", np.float32).launch((n + 3) // 4, n, seed, stream, out)
    return seed, stream


def philox4x32_10(counters: np.ndarray, key) -> np.ndarray:
    """Philox4x32-10 of an (n, 4) uint32 array of counters under a (2,) key, in NumPy."""
    c = [counters[:, j].astype(np.uint64) for j in range(4)]
    k0, k1 = np.uint64(key[0]), np.uint64(key[1])
    m0, m1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
    for _ in range(10):
        p0, p1 = m0 * c[0], m1 * c[2]
        c = [(p1 >> np.uint64(32)) ^ c[1] ^ k0, p1 & _MASK32, (p0 >> np.uint64(32)) ^ c[3] ^ k1, p0 & _MASK32]
        k0 = (k0 + np.uint64(0x9E3779B9)) & _MASK32
        k1 = (k1 + np.uint64(0xBB67AE85)) & _MASK32
    return np.stack(c, axis=1).astype(np.uint32)


def host_bits(n: int, seed: int, stream: int) -> np.ndarray:
    """What `bits` draws on the device for (seed, stream), computed on the host."""
    groups = np.arange((n + 3) // 4, dtype=np.uint64)
    counters = np.stack([groups & _MASK32, groups >> np.uint64(32),
                         np.full_like(groups, stream & 0xFFFFFFFF), np.full_like(groups, stream >> 32)], axis=1)
    key = (seed & 0xFFFFFFFF, seed >> 32)
    return philox4x32_10(counters.astype(np.uint32), key).reshape(-1)[:n]
