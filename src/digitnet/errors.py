"""The few exceptions digitnet raises on purpose.

Every message names the problem and says what to do about it. The CLI turns any
``DigitnetError`` into one ``Error: ...`` line and exit status 1; the web app turns it
into a JSON error with a 4xx status.
"""

from __future__ import annotations


class DigitnetError(Exception):
    """Base class: a problem with the user's input, files or settings (not a bug)."""


class DataError(DigitnetError):
    """A data set file is missing, truncated, corrupted, or of the wrong format."""


class ConfigError(DigitnetError, ValueError):
    """A hyperparameter or network description is out of range or inconsistent."""


class ModelFileError(DigitnetError):
    """A model or checkpoint file cannot be read, or was altered or truncated."""


class FileWriteError(ModelFileError):
    """A file (model, picture, figure) cannot be written where it was asked to go.

    A kind of :class:`ModelFileError`, which is what every writer raised before.
    """


class ImageError(DigitnetError):
    """An image given to ``predict`` cannot be read or holds no ink."""


class DivergenceError(DigitnetError):
    """Training produced a NaN or infinite cost; the last good weights were kept."""


class ExpressionError(DigitnetError, ValueError):
    """A formula for the gradient-descent playground cannot be parsed or evaluated.

    ``position`` is the 0-based character offset in the formula where the problem is,
    or ``None`` when it concerns the whole formula.
    """

    def __init__(self, message: str, position: int | None = None):
        super().__init__(message)
        self.position = position
