"""Lets the tests import dato_diffusers from this checkout when it is not pip-installed."""
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
