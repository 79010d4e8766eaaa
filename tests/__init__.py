"""The test suite, a package so that its helpers import as ``tests.<module>`` (``tests.fakes``).

With this file pytest puts the repository root, not ``tests/``, on ``sys.path`` for
``tests/conftest.py`` and the tests beside it, whichever way pytest is started. The test
folders below have no ``__init__.py``: their modules keep rootdir-based names, so two test
files in different folders must not share a basename.
"""
