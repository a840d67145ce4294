"""recap: recaption web-scale image-text datasets with a vision-language model and curate them for training."""

__version__ = "0.1.0"
