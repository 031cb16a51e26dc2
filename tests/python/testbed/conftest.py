"""Test-bed tests import this checkout's python/ (the venv's .pth may name another one)."""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "python"))
