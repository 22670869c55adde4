"""setup.py - the build step pyproject.toml cannot express: put
libcbctiq.so into the package. The library comes from, in order:
CBCTIQ_BUILD_DIR (a CMake build tree that has built it), ./build (the tree
`make` builds), or a CMake build of just the shared library made here in
build-python/cmake (Release, no tests). The package's version is CMake's
project version."""
import os
import re
import shutil
import subprocess

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

ROOT = os.path.dirname(os.path.abspath(__file__))


def project_version():
    with open(os.path.join(ROOT, "CMakeLists.txt"), encoding="utf-8") as f:
        m = re.search(r"project\(cbctiq VERSION (\d+)\.(\d+)\.(\d+)", f.read())
    return m.groups()


VERSION = project_version()
SONAME = "libcbctiq.so.%s.%s" % VERSION[:2]  # SOVERSION MAJOR.MINOR (CMakeLists.txt)


def built_library():
    """The shared library of a build tree, building one when none is given."""
    explicit = os.environ.get("CBCTIQ_BUILD_DIR")
    trees = [explicit] if explicit else [os.path.join(ROOT, "build")]
    for tree in trees:
        path = os.path.join(tree, SONAME)
        if os.path.exists(path):
            return path
    if explicit:
        raise SystemExit(f"CBCTIQ_BUILD_DIR={explicit} holds no {SONAME}: build it there first "
                         "(cmake --build {explicit} --target cbctiq_shared)")
    tree = os.path.join(ROOT, "build-python", "cmake")
    subprocess.run(["cmake", "-S", ROOT, "-B", tree, "-DCMAKE_BUILD_TYPE=Release", "-DCBQ_TESTS=OFF"],
                   check=True)
    subprocess.run(["cmake", "--build", tree, "--target", "cbctiq_shared", "-j", str(os.cpu_count() or 1)],
                   check=True)
    return os.path.join(tree, SONAME)


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "cbctiq", SONAME)
        shutil.copyfile(built_library(), target)  # the file itself, not the symlink
        os.chmod(target, 0o755)


class BinaryDistribution(Distribution):
    """The package carries a compiled library: a platform wheel."""

    def has_ext_modules(self):
        return True


setup(version=".".join(VERSION), cmdclass={"build_py": BuildWithLibrary}, distclass=BinaryDistribution,
      options={"build": {"build_base": os.path.join("build-python", "setuptools")},
               "egg_info": {"egg_base": "build-python"}})
