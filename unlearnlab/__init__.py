"""unlearnlab: a machine-unlearning lab for image classifiers on MNIST-family data."""

__version__ = "0.1.0"
