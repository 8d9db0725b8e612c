"""The one exception type meant for users."""


class XvrInputError(ValueError):
    """Bad user input: the message names the file or field, what is wrong, and the fix.

    The CLI prints it on one line and exits with status 2; napari shows it as a notification.
    """
