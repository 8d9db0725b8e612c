"""The exception types meant for users."""


class XvrInputError(ValueError):
    """Bad user input: the message names the file or field, what is wrong, and the fix.

    The CLI prints it on one line and exits with status 2; napari shows it as a notification.
    """


class XvrOutputError(XvrInputError):
    """An output could not be written (disk full, read-only, no permission, file too large).

    The message names the file and the system's reason; nothing half-written is left behind.
    """
