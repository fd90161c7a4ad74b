"""lars_ref: an educational NumPy/CuPy reference implementation of LARS.

You, Gitman, Ginsburg (2017), "Large Batch Training of Convolutional Networks",
arXiv:1708.03888. See docs/algorithm1.md for the algorithm, docs/paper_map.md
for where each part of the paper lives in this package.
"""
__version__ = "0.1.0"
