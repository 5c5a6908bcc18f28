"""The process-wide random stream used by fillers, Dropout, data shuffling and crops.

`set_random_seed` makes a run repeatable, as Caffe's `Caffe::set_random_seed` does.
"""
import numpy as np

_state = {"seed": None, "generator": np.random.default_rng()}


def set_random_seed(seed: int):
    _state["seed"] = int(seed)
    _state["generator"] = np.random.default_rng(int(seed))


def generator() -> np.random.Generator:
    return _state["generator"]


def seed():
    """The last seed set, or None when the stream is unseeded."""
    return _state["seed"]


def get_state():
    return _state["generator"].bit_generator.state


def set_state(state):
    _state["generator"].bit_generator.state = state
