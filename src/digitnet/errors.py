"""The few exceptions digitnet raises on purpose.

Every message names the problem and says what to do about it. The CLI turns any
``DigitnetError`` into one ``Error: ...`` line and exit status 1; the web app turns it
into a JSON error with a 4xx status.
"""

from __future__ import annotations


class DigitnetError(Exception):
    """Base class: a problem with the user's input, files or settings (not a bug).

    ``setting`` is the name of the setting at fault (a field of
    :class:`~digitnet.config.NetworkConfig` or :class:`~digitnet.config.TrainConfig` such as
    ``"eta"``, or an argument of a run such as ``"resume"``), or None; ``settings`` all of
    them where several are involved. The message may write a setting as ``{eta}``:
    ``str(err)`` shows the setting's own name (``eta``), and :meth:`render` lets a front end
    show its own word for it instead (the CLI ``--eta``, the web page a form field's label).
    """

    def __init__(self, message: str = "", setting: str | tuple[str, ...] | None = None):
        self.settings: tuple[str, ...] = (setting,) if isinstance(setting, str) else tuple(setting or ())
        self.setting: str | None = self.settings[0] if self.settings else None
        self.template = str(message)
        super().__init__(self.render(str))

    def render(self, name_of) -> str:
        """The message with each ``{setting}`` written as ``name_of(setting)``."""
        text = self.template
        for s in self.settings:
            text = text.replace("{" + s + "}", name_of(s))
        return text


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


class NotLearning(DigitnetError, UserWarning):
    """Not raised but returned (:func:`digitnet.training.train.not_learning`): training runs but the
    network is not learning, e.g. because the learning rate is far too large."""


class ExpressionError(DigitnetError, ValueError):
    """A formula for the gradient-descent playground cannot be parsed or evaluated.

    ``position`` is the 0-based character offset in the formula where the problem is,
    or ``None`` when it concerns the whole formula.
    """

    def __init__(self, message: str, position: int | None = None):
        super().__init__(message)
        self.position = position
