"""sslzoo: semi-supervised and clustering methods as Lightning modules."""

__version__ = "0.1.0"
