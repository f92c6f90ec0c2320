"""Packaging for local installs and for shipping code to Dataflow workers (--setup_file)."""

from pathlib import Path

from setuptools import find_packages, setup


def requirements():
    """Direct dependencies (requirements.in) without their exact lock pins."""
    lines = Path(__file__).with_name("requirements.in").read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines
            if line.strip() and not line.startswith(("#", "-"))]


setup(
    name="ser-archive",
    version="0.1.0",
    description="Speech emotion recognition at archive scale: Beam feature/scoring pipelines, "
                "a fused DenseNet+CNN trainer and a Streamlit app",
    long_description=Path(__file__).with_name("README.md").read_text(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11,<3.13",
    packages=find_packages(include=["ser_model", "ser_model.*", "pipelines", "pipelines.*", "ser_cli"]),
    package_data={"ser_model": ["bundled_model/*"]},
    data_files=[("configs", [str(p) for p in Path("configs").glob("*.yaml")])],
    install_requires=requirements(),
    entry_points={"console_scripts": ["ser=ser_cli.main:main"]},
)
