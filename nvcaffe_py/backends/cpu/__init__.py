"""The CPU backend: NumPy, with the machinery that makes it fast kept here rather than in the
layers: the layers' threads (threads.py), reusable working buffers (scratch.py), im2col layouts
and their cost model (im2col.py), the convolution and pooling engines, and the constants all of
them were tuned with (tuning.py), so that a layer file reads as the layer's semantics.
"""
