"""Notebook-first research workbench."""
__version__ = "0.1.0"
