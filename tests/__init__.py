"""Test suite; sub-packages mirror the packages of the project."""
import os

#: The repository root (scripts, ``test/`` launch scripts, ``docs/``).
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
