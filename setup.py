"""recbole-sam: Sharpness-Aware Minimization trainers for RecBole's sequential recommenders."""

from setuptools import find_packages, setup

TUNE = [
    'ray[tune]<=2.6.3; python_version < "3.12"',
    'pyarrow<26; python_version < "3.12"',
    'ray[tune]>=2.10; python_version >= "3.12"',
]

setup(
    name="recbole-sam",
    version="0.1.0",
    description="Train RecBole sequential recommenders with Sharpness-Aware Minimization (SAMRec, RecSys'23)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["recbole_sam", "recbole_sam.*"]) + ["recbole_sam.properties"],
    # The YAML defaults live in properties/ at the top of the repository; a wheel carries them
    # inside the package (recbole_sam/properties), where property_files.properties_dir() looks first.
    package_dir={"recbole_sam.properties": "properties"},
    package_data={"recbole_sam.properties": ["*.yaml", "*/*.yaml"]},
    py_modules=["run_recbole_sam", "run_analysis", "run_experiments", "run_recbole_sam_tune"],
    install_requires=[
        "recbole==1.2.1",
        # Any torch >= 2.0 works, GPU builds included: a build installed first is kept
        # (docs/install.md: which build each install line gets, and the CPU-only lines).
        "torch>=2.0",
        # recbole 1.2.1 pins ray<=2.6.3, which needs numpy<2 and has no wheels for Python >= 3.12;
        # there, install with uv's override of that pin (docs/install.md): recbole runs on
        # numpy 2 and newer Ray with compat.py's numpy aliases. pandas 3 silently skips
        # RecBole's NaN filling; ray imports pkg_resources, gone from setuptools 82.
        "numpy>=1.21,<2; python_version < '3.12'",
        "numpy>=1.21; python_version >= '3.12'",
        "pandas>=1.4,<3",
        "setuptools<82",
        "ray<=2.6.3; python_version < '3.12'",
        "ray>=2.10; python_version >= '3.12'",
        "pyyaml",
        "tqdm",
        "matplotlib>=3.5",  # the experiments' and landscapes' PNG plots
    ],
    extras_require={
        # The search (run_recbole_sam_tune.py) and the parallel grids (--workers): Ray Tune as
        # RecBole 1.2.1 pins it on Python < 3.12 (there pyarrow 26 needs numpy 2, and Tune then
        # fails on its first ray.put); a Ray with wheels on Python >= 3.12.
        "tune": TUNE,
        # --search optuna / hyperopt, each on top of the tune extra.
        "optuna": TUNE + ["optuna"],
        "hyperopt": TUNE + ["hyperopt"],
        "test": ["pytest>=7"],
    },
    entry_points={"console_scripts": ["recbole-sam=recbole_sam.cli:main"]},
    classifiers=["Programming Language :: Python :: 3", "License :: OSI Approved :: MIT License"],
)
