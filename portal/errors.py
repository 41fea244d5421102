class ActionRefused(Exception):
    """The portal refuses an action before anything reaches the cloud.

    `str(exc)` is the message for the user; views answer with `status`.
    """

    def __init__(self, message: str, *, status: int = 409):
        super().__init__(message)
        self.message = message
        self.status = status
