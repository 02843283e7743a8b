"""Check what `python -m build` made: the wheel's and the sdist's contents.

    python .ci/check_dist.py dist/

The wheel must hold the package, the stubs, py.typed, the Cython sources
(.pyx and the .pxd they cimport) and each extension once, stripped (no
symbol table, no debug sections), and no generated C.  The sdist must hold everything
needed to build the extension and run the test suite.  Exits 1 and says
what is wrong otherwise.
"""

from __future__ import annotations

import struct
import sys
import tarfile
import zipfile
from pathlib import Path

WHEEL_MUST = [
    "cvstore/__init__.py",
    "cvstore/py.typed",
    "cvstore/_ring.pyi",
    "cvstore/_ring.pyx",
    "cvstore/_chash.pxd",
    "cvstore/_records.pyi",
    "cvstore/_records.pyx",
    "cvstore/_reference.py",
    "cvstore/cli.py",
    "cvstore/_cli/shell.py",
    "cvstore/stores/redis/store.py",
    "cvstore/stores/redis/aio.py",
    "cvstore/core/writes.py",
    "cvstore/core/membership.py",
]
SDIST_MUST = [
    "pyproject.toml",
    "setup.py",
    "README.md",
    "LICENSE",
    "cvstore/_ring.pyx",
    "cvstore/_ring.pyi",
    "cvstore/_chash.pxd",
    "cvstore/_records.pyx",
    "cvstore/_records.pyi",
    "cvstore/py.typed",
    "csrc/cvs_hash.h",
    "csrc/cvs_search.h",
    "csrc/cvs_merge.h",
    "csrc/cvs_bounded.h",
    "csrc/cvs_blocks.h",
    "csrc/cvs_xxh64.c",
    "csrc/cvs_md5.c",
    "tests/conftest.py",
    "tests/support/redis_servers.py",
    "tests/redis/conftest.py",
    "tests/test_readme.py",
]

EXTENSIONS = ["_ring", "_records"]  # the compiled modules, each in the wheel exactly once


def elf_sections(data: bytes) -> list[str]:
    """Section names of a 64- or 32-bit little-endian ELF file."""
    if data[:4] != b"\x7fELF":
        raise ValueError("not an ELF file")
    is64 = data[4] == 2
    if is64:
        shoff, = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    else:
        shoff, = struct.unpack_from("<I", data, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x2E)

    def header(i: int) -> tuple[int, int, int]:
        base = shoff + i * shentsize
        name, = struct.unpack_from("<I", data, base)
        if is64:
            offset, size = struct.unpack_from("<QQ", data, base + 0x18)
        else:
            offset, size = struct.unpack_from("<II", data, base + 0x10)
        return name, offset, size

    _, str_off, str_size = header(shstrndx)
    names = data[str_off:str_off + str_size]
    return [names[n:names.index(b"\0", n)].decode() for n, _, _ in map(header, range(shnum))]


def check_wheel(path: Path) -> list[str]:
    problems = []
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        for must in WHEEL_MUST:
            if must not in names:
                problems.append(f"wheel lacks {must}")
        for name in names:
            if name.endswith((".c", ".html")):
                problems.append(f"wheel ships the generated {name}")
        exts = [n for n in names if n.endswith((".so", ".pyd"))]
        for module in EXTENSIONS:
            found = [n for n in exts if n.startswith(f"cvstore/{module}.")]
            if len(found) != 1:
                problems.append(f"wheel has {len(found)} {module} extensions, not 1: {found}")
        for ext in exts:
            data = wheel.read(ext)
            if ext.endswith(".so"):
                sections = elf_sections(data)
                unstripped = [s for s in sections if s == ".symtab" or s.startswith(".debug")]
                if unstripped:
                    problems.append(f"{ext} is not stripped: it has {', '.join(unstripped)}")
            print(f"wheel: {path.name} {path.stat().st_size:,} bytes; {ext} {len(data):,} bytes")
    return problems


def check_sdist(path: Path) -> list[str]:
    with tarfile.open(path) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    problems = [f"sdist lacks {must}" for must in SDIST_MUST if must not in names]
    problems += [f"sdist ships the build product {n}" for n in sorted(names)
                 if n.endswith((".so", ".pyd"))
                 or n in {f"cvstore/{module}.c" for module in EXTENSIONS}]
    print(f"sdist: {path.name} {path.stat().st_size:,} bytes, {len(names)} entries")
    return problems


def main(argv: list[str]) -> int:
    dist = Path(argv[1] if len(argv) > 1 else "dist")
    wheels = sorted(dist.glob("cvstore-*.whl"))
    sdists = sorted(dist.glob("cvstore-*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        print(f"expected one wheel and one sdist in {dist}, got {wheels + sdists}", file=sys.stderr)
        return 1
    problems = check_wheel(wheels[0]) + check_sdist(sdists[0])
    for problem in problems:
        print(f"check_dist: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
