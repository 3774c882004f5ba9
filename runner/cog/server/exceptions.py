"""Exceptions the runtime raises inside a predictor."""


class CancelationException(Exception):
    """Raised inside predict() when its prediction is canceled.

    Derives from Exception, as in Cog; a predictor that catches it to clean up
    should re-raise it.
    """
