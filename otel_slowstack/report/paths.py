"""Application or library, decided on the path text alone.

Stacks come from other machines, so nothing here looks at this interpreter's
``sys.path``: a frame is the library's when its path runs through
``site-packages``/``dist-packages``, a Python standard library directory, or
is generated code (``<frozen ...>``, ``<string>``). Everything else is the
application's own.
"""

from __future__ import annotations

import re

_PACKAGES = re.compile(r"[\\/](?:site|dist)-packages[\\/]")
# /usr/lib/python3.11/, ~/.pyenv/versions/3.12.1/lib/python3.12/, lib/python3.13t/,
# /usr/lib/pypy3.9/, PyPy's lib-python/3/, and Windows' C:\Python311\Lib\.
_STDLIB = re.compile(
    r"[\\/]lib[\\/](?:python|pypy)\d*(?:\.\d+)*t?[\\/]"
    r"|[\\/]lib-python[\\/]\d[\w.]*[\\/]"
    r"|\A[A-Za-z]:\\(?:[^\\]+\\)*?Lib\\",
    re.IGNORECASE,
)


def is_app_path(path: str) -> bool:
    """True for the application's own source files."""
    if not path or path.startswith("<"):
        return False
    if _PACKAGES.search(path):
        return False
    return _STDLIB.search(path) is None


def short_path(path: str) -> str:
    """What a reader needs to recognise a file: ``flask/app.py``, ``threading.py``, ``examples/shop.py``."""
    if not path or path.startswith("<"):
        return path
    packages = list(_PACKAGES.finditer(path))
    if packages:  # the innermost packages directory wins
        return path[packages[-1].end():].replace("\\", "/")
    match = _STDLIB.search(path)
    if match is not None:
        return path[match.end():].replace("\\", "/")
    parts = [p for p in re.split(r"[\\/]", path) if p]
    return "/".join(parts[-2:])
