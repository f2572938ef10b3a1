"""The provider's exceptions, all under :class:`tender.errors.TenderError`::

    TenderError
    └── ProviderError                 anything the provider node refuses or fails at
        ├── BadRequest                a request the node refuses (becomes a 4xx ErrorBody)
        │   ├── ModelNotServed        the model is not served here (404)
        │   ├── PayloadTooLarge       the body is over ``max_payload_bytes`` (413)
        │   ├── InputRejected         shape, dtype or commitment do not match the card (422)
        │   ├── NotAwarded            the job is not awarded to this provider (403)
        │   ├── JobNotFound           no such job in the store (404)
        │   ├── InputConflict         another input for a job already accepted (409)
        │   └── UnsupportedMediaType  a body that is not application/json (415)
        ├── BackendError              the inference backend failed or is unreachable
        └── ProvingError              the proving worker failed

A :class:`BadRequest` carries an error ``code``, the offending ``field`` and an HTTP
``status`` so the API turns it into an :class:`tender.wire.ErrorBody` in one place.
"""

from __future__ import annotations

from tender.errors import TenderError


class ProviderError(TenderError):
    """Root of the provider's errors."""


class BadRequest(ProviderError):
    """A request the node refuses; the API answers ``status`` with an ErrorBody."""

    status: int = 400
    code: str = "bad_request"

    def __init_subclass__(cls, *, status: int | None = None, code: str | None = None) -> None:
        super().__init_subclass__()
        if status is not None:
            cls.status = status
        if code is not None:
            cls.code = code

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code


class ModelNotServed(BadRequest, status=404, code="unknown_model"):
    """The model asked for is not served here."""


class PayloadTooLarge(BadRequest, status=413, code="payload_too_large"):
    """The body is over the size limit."""


class InputRejected(BadRequest, status=422, code="input_rejected"):
    """Wrong shape, wrong dtype, or an input that does not match the intent's commitment."""


class NotAwarded(BadRequest, status=403, code="not_awarded"):
    """The job is not awarded to this provider."""


class JobNotFound(BadRequest, status=404, code="job_not_found"):
    """No such job here."""


class InputConflict(BadRequest, status=409, code="input_conflict"):
    """The job was accepted already, with another input (the same input again is answered 200)."""


class UnsupportedMediaType(BadRequest, status=415, code="unsupported_media_type"):
    """The body is not JSON."""


class BackendError(ProviderError):
    """The inference backend failed (session error, external server unreachable or wrong)."""


class ProvingError(ProviderError):
    """Making the proof failed."""
