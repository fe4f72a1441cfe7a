"""Registering models in MLflow: the store (runs, versions, aliases, the promotion gate), the pyfunc model
logged from code, and the provenance each version carries (git, DVC lock, params, loss curves)."""
