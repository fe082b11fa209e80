"""dyroot: Drell-Yan dimuon templates from normalizing flows, for the spurious-signal test."""

import pathlib
import re

from setuptools import find_packages, setup

here = pathlib.Path(__file__).parent
version = re.search(r'__version__ = "([^"]+)"', (here / "dyroot" / "_version.py").read_text()).group(1)

extras = {
    # The official ROOT wheel from PyPI (ROOT 6.40). Users of LCG or conda ROOT skip this extra
    # and keep theirs (create the venv with --system-site-packages).
    "root": ["root>=0.1a12"],
    "onnx": ["onnx>=1.17", "onnxruntime>=1.20"],
    # Standalone SOFIE (ONNX -> C++), and a BLAS that needs no root rights: SOFIE's generated
    # code calls sgemm_, compiled with -Dsgemm_=scipy_sgemm_ against libscipy_openblas.
    "sofie": ["sofie>=0.1.0", "scipy-openblas32>=0.3.28", "onnx>=1.17"],
    # 8.317.2 has a binary wheel; 8.318 compiles from source for ~30 minutes.
    "sim": ["pythia8mc==8.317.2"],
    "plot": ["matplotlib>=3.8", "mplhep>=0.3"],
    "dask": ["dask>=2024.1", "distributed>=2024.1"],
    "test": ["pytest>=8"],
}
extras["all"] = sorted({req for name in ("root", "onnx", "sofie", "sim", "plot", "dask") for req in extras[name]})
extras["dev"] = sorted(set(extras["all"]) | set(extras["test"]) | {"mypy", "ruff"})

setup(
    name="dyroot",
    version=version,
    description="Drell-Yan dimuon templates from normalizing flows, for the spurious-signal test, in ROOT",
    long_description=(here / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["dyroot", "dyroot.*"]),
    package_data={"dyroot": ["py.typed", "cpp/*.hxx", "cpp/*.cxx", "cpp/*.h", "cpp/CMakeLists.txt", "cpp/*.cmake", "data/*"]},
    install_requires=[
        "numpy>=1.24",
        # CPU machines: `pip install torch==2.13.0` first; CUDA users install their own build.
        "torch>=2.2",
        "scipy>=1.10",
        "uproot>=5.3",
        "tqdm>=4.60",
    ],
    extras_require=extras,
    entry_points={"console_scripts": ["dyroot = dyroot.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: C++",
        "Topic :: Scientific/Engineering :: Physics",
        "Intended Audience :: Science/Research",
    ],
)
