"""The optional C accelerator (bus/_core/_speedups.c); everything else is in pyproject.toml.

``optional=True``: where it cannot be compiled (no compiler, no Python
headers), setuptools says so and installs the pure-Python bus, which runs
the same code the extension accelerates (``bus/_core/_accel.py``).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("bus._core._speedups", ["bus/_core/_speedups.c"], optional=True),
    ]
)
