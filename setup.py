"""Installs avrnn_tf. The pins are the tested set recorded in BUILD_NOTES.md (why each one)."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "avrnn_tf" / "__init__.py").read_text()).group(1)

INSTALL_REQUIRES = [
    "tensorflow==2.21.0",
    # TFP 0.25 imports tf_keras eagerly; the [tf] extra pulls it (pinned below to match TF).
    "tensorflow-probability[tf]==0.25.0",
    "tf-keras==2.21.0",
    "keras==3.15.1",
    # TF 2.21 no longer depends on tensorboard; tf.summary histograms and audio need it.
    "tensorboard==2.21.0",
    "absl-py==2.5.1",
    "ml-collections==1.1.0",
    "numpy>=1.26,<3",
    "scipy==1.17.1",
    "soundfile==0.14.0",
    "matplotlib==3.11.2",
]

setup(
    name="avrnn_tf",
    version=VERSION,
    description="Adversarially regularized VRNN and the VRNN family in TensorFlow 2 / Keras 3 / TFP",
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["avrnn_tf", "avrnn_tf.*"]),
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "test": ["pytest==9.2.0", "pytest-xdist==3.8.0", "hypothesis==6.168.3"],
        # tensorflow-io's last release (0.37.1) works only with TF 2.16; this extra cannot lower
        # the tensorflow pin, so the working stack is installed from requirements-tfio.txt
        # (see README, "tensorflow-io"). Without it the package decodes with soundfile.
        "tfio": ["tensorflow-io==0.37.1", "tensorflow-io-gcs-filesystem==0.37.1"],
    },
    entry_points={"console_scripts": [
        "avrnn-train=avrnn_tf.train:run",
        "avrnn-eval=avrnn_tf.evaluate:run",
        "avrnn-prepare=avrnn_tf.prepare:run",
        "avrnn-export=avrnn_tf.export:run",
        "avrnn-reproduce=avrnn_tf.experiments.reproduce_paper:run",
        "avrnn-compare=avrnn_tf.experiments.compare:run",
        "avrnn-bench=avrnn_tf.bench:run",
    ]},
    classifiers=["Programming Language :: Python :: 3", "Topic :: Scientific/Engineering"],
)
