"""The CUDA backend (PyCUDA): context, device memory pool, kernel loading, SGEMM."""
