"""The few errors the portal distinguishes. The gateway turns every SDK error into one."""


class CloudError(Exception):
    """Something went wrong talking to a site. `message` is safe to show a user."""

    def __init__(self, message: str, *, site: str = "", status: int | None = None):
        super().__init__(message)
        self.message = message
        self.site = site
        self.status = status


class NotFound(CloudError):
    """The object does not exist (any more) in the cloud."""


class Conflict(CloudError):
    """The cloud refused because of the object's state (Nova 409), e.g. a task is running."""


class Forbidden(CloudError):
    """The service account may not do this, or a quota is exhausted (403)."""


class BadRequest(CloudError):
    """The cloud rejected the request's content (400), e.g. an image that is not active."""


class Unavailable(CloudError):
    """The site cannot be reached or answered with a server error; worth retrying later.

    `silent`: no HTTP answer came back at all (timed out, refused): not a passing
    503, the site is down or hung, and every further call there would cost the whole
    timeout."""

    def __init__(self, message: str, *, site: str = "", status: int | None = None):
        super().__init__(message, site=site, status=status)
        self.silent = status is None
