"""Quiver's physics test bed for an emerging-jets analysis (issue 10).

    python -m quiver_testbed generate --preset demo     # Pythia 8 -> detector -> jets -> files
    events = quiver_testbed.read_h5("data/qcd-.../qcd_1000ev_seed1.h5")   # ak.Array

Layout of the files: docs/data-format.md; physics: docs/physics.md; the interface shared
with the models and the analyses: docs/testbed-contract.md.
"""

from .h5io import TestbedFileError, file_attrs, read_h5, read_many

__all__ = ["TestbedFileError", "file_attrs", "read_h5", "read_many"]
