"""hwnas: hardware-aware neural architecture search for Transformers (the searches and the CLI)."""
__version__ = "0.1.0"
