"""The errors a user can cause. Each message is for the user: it names the file, key or value and what is
wrong, one problem per line; `python -m stages.<name>`, the CLI and the flows print it without a traceback."""


class ParamsError(ValueError):
    """A params file that cannot be used."""


class PromptError(ParamsError):
    """A prompt template that cannot be expanded (an unknown `{placeholder}`)."""


class StageError(Exception):
    """Bad input found by a stage (photos, manifests, checkpoints, jobs, styles)."""


class ModelError(ValueError):
    """A base or trained model that cannot be loaded; the message says which and why."""


USER_ERRORS = (ParamsError, StageError, ModelError)
