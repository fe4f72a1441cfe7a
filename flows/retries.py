"""Which failures a task retries: only those a second attempt can fix, such as a dropped connection to the
model hub or a tracking server, or a storage hiccup. Bad input (ParamsError, StageError, ModelError) and
bugs fail at once, with their own message: retrying them only delays the same error."""

from __future__ import annotations

from prefect import Task
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from boothline.errors import USER_ERRORS

# OSErrors that describe the request, not the moment: the same call fails the same way again.
PERMANENT_OS_ERRORS = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)


def is_transient(error: BaseException) -> bool:
    if isinstance(error, USER_ERRORS):
        return False
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    # requests' and huggingface_hub's network errors are OSErrors too
    return isinstance(error, OSError) and not isinstance(error, PERMANENT_OS_ERRORS)


def retry_if_transient(task: Task, task_run: TaskRun, state: State) -> bool:
    """A Prefect `retry_condition_fn`."""
    error = state.result(raise_on_failure=False)
    return isinstance(error, BaseException) and is_transient(error)
