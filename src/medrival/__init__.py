"""medrival: does an efficiently fine-tuned generalist VLM rival a specialist medical VLM?

The public API is imported lazily so that ``import medrival`` (and the CLI start-up) stays fast:

    >>> import medrival
    >>> model = medrival.create_model("demo-specialist-clip")
    >>> test = medrival.load_dataset("demo-xray", "test")
    >>> run = medrival.run_study(medrival.load_study("study.yaml"), "results/")
    >>> frame = medrival.load_results("results/")
"""
from __future__ import annotations

from importlib import import_module

__version__ = "0.1.0"

_API = {
    "create_model": "medrival.models.factory",
    "load_dataset": "medrival.data.catalog",
    "dataset_info": "medrival.data.catalog",
    "check_release": "medrival.data.zoo.api",
    "register_custom_dataset": "medrival.data.zoo.custom",
    "get_card": "medrival.models.catalog",
    "register_card": "medrival.models.catalog",
    "memory_estimate": "medrival.models.precision",
    "load_study": "medrival.study.spec",
    "parse_study": "medrival.study.spec",
    "run_study": "medrival.study.runner",
    "run_demo": "medrival.study.demo",
    "load_results": "medrival.study.results",
    "METHODS": "medrival.methods",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'medrival' has no attribute {name!r}")
