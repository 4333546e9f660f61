"""Build hook: setuptools reads the project metadata from pyproject.toml; this file only
adds the cffi extension (`verifier._native`), whose build script lives in native/build.py."""

from setuptools import setup

setup(cffi_modules=["native/build.py:ffibuilder"])
