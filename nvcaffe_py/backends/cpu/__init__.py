"""The CPU backend: NumPy, with the machinery that makes it fast kept here rather than in the
layers: the layers' threads (threads.py), reusable working buffers (scratch.py), im2col's column
layouts (im2col.py), the convolution engine and the cost model that picks among those layouts
(convolution.py), the pooling engine (pooling.py), and the constants all of them were tuned with
(tuning.py), so that a layer file reads as the layer's semantics.
"""
