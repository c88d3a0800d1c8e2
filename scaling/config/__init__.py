"""A point's configuration: the typed schema (``schema``) and Hydra composition (``compose``)."""
