"""Synthetic lumbar MR phantoms (complete 14-class labels) and DICOM studies built from them."""

from inference.synthetic.phantom import DiscTruth, Phantom, PhantomOptions, VertebraTruth, generate_phantom

__all__ = ["DiscTruth", "Phantom", "PhantomOptions", "VertebraTruth", "generate_phantom"]
