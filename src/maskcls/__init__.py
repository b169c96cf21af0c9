"""maskcls: train and serve a mask / gender / age classifier for face photos."""

__version__ = "0.1.0"
