"""One error type for everything a caller can get wrong; the HTTP edge turns each
into `{"error": {"code", "message"}}` with its status, the CLI into a message and
a non-zero exit."""


class PayfeedError(Exception):
    status = 400

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        if status is not None:
            self.status = status


class BadRequest(PayfeedError):
    status = 400


class Unauthorized(PayfeedError):
    status = 401


class Forbidden(PayfeedError):
    status = 403


class NotFound(PayfeedError):
    status = 404


class Conflict(PayfeedError):
    status = 409


class TooLarge(PayfeedError):
    status = 413


class UnsupportedMediaType(PayfeedError):
    status = 415


class RuleViolation(PayfeedError):
    """A registration breaks a campaign rule or a field rule; nothing of it is applied."""

    status = 422
