"""Shipped configuration: search spaces, tasks and hardware profiles (YAML). Installed with the
package, so `nas` finds them from any directory."""
from pathlib import Path


def config_dir() -> Path:
    return Path(__file__).resolve().parent
