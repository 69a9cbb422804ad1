"""scm-dist: distributed SCM / TS-CAM training and exact WSOL evaluation.

Importing the package registers the model family in timm.
"""

from . import models  # noqa: F401  (registers deit_{tscam,scm}_* in timm)

__version__ = "0.1.0"
