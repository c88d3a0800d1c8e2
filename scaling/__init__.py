"""scaling: run parameter-scaling studies of neural networks from the command line."""

__version__ = "0.1.0"
