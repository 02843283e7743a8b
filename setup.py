"""Declares the compiled extensions (cvstore._ring, _records, _direct) and their build switches.

CVSTORE_DEBUG=1     -O0 -g, bounds checks and assertions on (a debug build)
CVSTORE_ANNOTATE=1  write Cython's HTML annotation next to each .pyx
CVSTORE_MARCH=...   add -march=... (never the default: wheels must run on any CPU)

A release build (no CVSTORE_DEBUG) compiles without debug information and,
on Linux, links with -s, so the extension in a wheel is stripped (about
0.5 MB instead of 3 MB with Python's default -g).
"""

import os
import sys
from pathlib import Path

# Refuse an unsupported Python before anything else: pip reads requires-python
# only after it has resolved the extras, and for an editable install of the
# test extra on 3.10 it backtracked through old releases for 14+ minutes
# instead of saying no.  This runs when pip first asks the build backend for
# its requirements, seconds into either README command.
OLDEST = (3, 11)
if sys.version_info < OLDEST:
    sys.exit(
        f"cvstore needs Python {OLDEST[0]}.{OLDEST[1]} or newer; "
        f"this is Python {sys.version.split()[0]} ({sys.executable})"
    )

from Cython.Build import cythonize  # noqa: E402 - after the version check
from setuptools import Extension, setup  # noqa: E402

DEBUG = os.environ.get("CVSTORE_DEBUG") == "1"
MARCH = os.environ.get("CVSTORE_MARCH")

compile_args = ["-std=c99", "-O0", "-g", "-UNDEBUG"] if DEBUG else ["-O3", "-g0"]
link_args = [] if DEBUG or not sys.platform.startswith("linux") else ["-s"]
if MARCH:
    compile_args.append(f"-march={MARCH}")

directives = {"boundscheck": True, "wraparound": True, "initializedcheck": True} if DEBUG else {}

ring = Extension(
    "cvstore._ring",
    sources=["cvstore/_ring.pyx", "csrc/cvs_xxh64.c", "csrc/cvs_md5.c"],
    include_dirs=["csrc"],
    depends=[
        "csrc/cvs_hash.h",
        "csrc/cvs_search.h",
        "csrc/cvs_merge.h",
        "csrc/cvs_points.h",
        "csrc/cvs_xxh64_words.h",
        "csrc/cvs_bounded.h",
        "csrc/cvs_blocks.h",
        "cvstore/_chash.pxd",
    ],
    extra_compile_args=compile_args,
    extra_link_args=link_args,
)

# Records built in C so the collector can leave them untracked (see _records.pyx).
records = Extension(
    "cvstore._records",
    sources=["cvstore/_records.pyx"],
    extra_compile_args=compile_args,
    extra_link_args=link_args,
)

# put and get of core/direct.py, compiled (see _direct.pyx); cimports _records.pxd.
direct = Extension(
    "cvstore._direct",
    sources=["cvstore/_direct.pyx"],
    depends=["cvstore/_records.pxd"],
    extra_compile_args=compile_args,
    extra_link_args=link_args,
)

# The generated C depends on the directives: regenerate it whenever the build
# kind differs from the one that generated it (a debug build, then a release one).
stamp = Path("build") / "cvstore-cython-build-kind"
kind = "debug" if DEBUG else "release"
switched = not stamp.is_file() or stamp.read_text() != kind
stamp.parent.mkdir(exist_ok=True)
stamp.write_text(kind)

setup(
    ext_modules=cythonize(
        [ring, records, direct],
        compiler_directives=directives,
        annotate=os.environ.get("CVSTORE_ANNOTATE") == "1",
        force=switched,
    )
)
