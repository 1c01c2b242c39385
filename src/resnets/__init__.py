"""resnets: the ResNet family from one declarative config.

The public names below are imported on first use (PEP 562): `import resnets` and the
`resnets` command start without loading PyTorch, so `--help` is quick and Ctrl-C during
start-up ends with one line instead of a traceback from deep inside an import.
"""

from importlib.metadata import PackageNotFoundError, version

from .lazy import lazy_names

try:
    __version__ = version("resnets")  # pyproject.toml is the one place the version is written
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

_HOMES = {
    "ImageClassifier": "classifier",
    "ResnetsError": "errors",
    "convert": "infer.convert",
    "evaluate": "infer",
    "explain": "infer",
    "fewshot": "fewlabels.fewshot",
    "export": "infer.export",
    "predict": "infer",
    "pretrain": "fewlabels.pretraining",
    "ResNet": "models",
    "ResNetConfig": "models",
    "create_model": "models",
    "get_config": "models",
    "list_models": "models",
    "register": "models",
    "load_model": "models",
    "save_weights": "models.weights",
    "TrainConfig": "training",
    "train": "training",
}

__all__ = ["__version__", *sorted(_HOMES)]
__getattr__, __dir__ = lazy_names(__name__, _HOMES)
