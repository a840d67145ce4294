"""`make demo`: the whole paper in miniature on the embedded world, resumable step by step, ending in an HTML
report (runs/demo/report/index.html)."""

from recap.demo.config import DemoConfig
from recap.demo.runner import run_demo

__all__ = ["DemoConfig", "run_demo"]
