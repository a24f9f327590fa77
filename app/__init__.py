"""inkwell: handwritten or typed, page by page."""

import os

# inkwell runs one worker process per core; BLAS threads inside each would only fight over the
# same cores (a 64 x 64 matrix product per glyph height took 8x longer with two threads than
# with one). Set before NumPy is imported by any module of the package; a value the user set
# wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

__version__ = "0.1.0"
