"""The error tree: every error carries a CLI exit code and an HTTP status.

One CLI handler and one FastAPI exception handler turn any :class:`AppError` into an exit code or a
JSON ``{"detail", "code"}`` body, so no layer needs to know how the error will be shown.
"""

from __future__ import annotations

from enum import IntEnum
from http import HTTPStatus


class ExitCode(IntEnum):
    """Process exit codes of the CLI."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    BAD_INPUT = 3
    MISSING_DEPENDENCY = 4
    OCR_FAILED = 5
    MODEL = 6
    DATASET = 7
    INTERRUPTED = 130


class AppError(Exception):
    """Base of every error inkwell reports to a user."""

    exit_code: ExitCode = ExitCode.INTERNAL
    http_status: int = HTTPStatus.INTERNAL_SERVER_ERROR
    code: str = "internal_error"

    def __init__(self, message: str) -> None:
        """Keep the user-facing message."""
        super().__init__(message)
        self.message = message


class InputError(AppError):
    """The input document cannot be used."""

    exit_code = ExitCode.BAD_INPUT
    http_status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "bad_input"


class EmptyInputError(InputError):
    """Zero bytes were given."""

    http_status = HTTPStatus.BAD_REQUEST
    code = "empty_input"


class UnsupportedFormatError(InputError):
    """The bytes are not a PDF or a supported image format."""

    http_status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    code = "unsupported_format"


class CorruptDocumentError(InputError):
    """The file looks like a known format but cannot be decoded."""

    code = "corrupt_document"


class EncryptedDocumentError(InputError):
    """The PDF is protected by a password."""

    code = "encrypted_document"


class TooManyPagesError(InputError):
    """The document has more pages than allowed."""

    code = "too_many_pages"


class DocumentTooLargeError(InputError):
    """The upload or the decoded image is larger than allowed."""

    http_status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    code = "too_large"


class ImageTooSmallError(InputError):
    """The image has too few pixels to hold any writing."""

    code = "image_too_small"


class MissingDependencyError(AppError):
    """An external program (tesseract, pdftoppm) is missing."""

    exit_code = ExitCode.MISSING_DEPENDENCY
    http_status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "missing_dependency"


class OcrError(AppError):
    """Tesseract failed on a page."""

    exit_code = ExitCode.OCR_FAILED
    http_status = HTTPStatus.BAD_GATEWAY
    code = "ocr_failed"


class WorkerCrashedError(OcrError):
    """A worker process died mid-document (killed, out of memory, or a crash in the OCR engine)."""

    http_status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "worker_crashed"


class OcrTimeoutError(OcrError):
    """Tesseract or pdftoppm took longer than allowed."""

    http_status = HTTPStatus.GATEWAY_TIMEOUT
    code = "timeout"


class ModelError(AppError):
    """A model cannot be loaded or used."""

    exit_code = ExitCode.MODEL
    http_status = HTTPStatus.INTERNAL_SERVER_ERROR
    code = "model_error"


class ModelNotFoundError(ModelError):
    """No model with that id or algorithm exists."""

    http_status = HTTPStatus.NOT_FOUND
    code = "model_not_found"


class ModelIntegrityError(ModelError):
    """A model file does not match the checksum in its metadata."""

    code = "model_integrity"


class ModelOutdatedError(ModelIntegrityError):
    """A version trained on features this inkwell no longer computes (after an upgrade).

    Not a fault of the request nor a crash: the service cannot classify until the version is
    retrained or another one is activated, so 503, with what to do in the message.
    """

    http_status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "model_outdated"


class DatasetError(AppError):
    """A training or evaluation dataset cannot be used."""

    exit_code = ExitCode.DATASET
    http_status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "dataset_error"


class DatasetNotFoundError(DatasetError):
    """No dataset by that name in the data directory."""

    http_status = HTTPStatus.NOT_FOUND
    code = "dataset_not_found"


class NoBaseFeaturesError(DatasetError):
    """The version named as a base carries no base features to train on."""

    http_status = HTTPStatus.CONFLICT
    code = "no_base_features"


class PathNotAllowedError(DatasetError):
    """A dataset path points outside the data directory."""

    http_status = HTTPStatus.FORBIDDEN
    code = "path_not_allowed"


class TrainingBusyError(AppError):
    """A training job is already running."""

    exit_code = ExitCode.USAGE
    http_status = HTTPStatus.CONFLICT
    code = "training_busy"


class TrainingInterruptedError(AppError):
    """The service is stopping: the running training gives up."""

    exit_code = ExitCode.INTERRUPTED
    http_status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "interrupted"


class JobNotFoundError(AppError):
    """No training or classification job with that id (or it expired)."""

    exit_code = ExitCode.USAGE
    http_status = HTTPStatus.NOT_FOUND
    code = "job_not_found"


class ServiceBusyError(AppError):
    """Too many pages are already in flight: come back after ``retry_after`` seconds."""

    exit_code = ExitCode.INTERNAL
    http_status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "busy"

    def __init__(self, message: str, retry_after: int) -> None:
        """Keep the message and the advised wait in seconds (the ``Retry-After`` header)."""
        super().__init__(message)
        self.retry_after = retry_after


class PageNotFoundError(AppError):
    """A page number outside the job's document."""

    exit_code = ExitCode.USAGE
    http_status = HTTPStatus.NOT_FOUND
    code = "page_not_found"


class PageNotReadyError(AppError):
    """The page exists but is not read yet: ask again later."""

    exit_code = ExitCode.USAGE
    http_status = HTTPStatus.CONFLICT
    code = "page_not_ready"


class QueueUnavailableError(AppError):
    """The job queue (Redis) cannot be reached."""

    exit_code = ExitCode.MISSING_DEPENDENCY
    http_status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "queue_unavailable"


class PageOutOfRangeError(InputError):
    """A page number the document does not have."""

    code = "page_out_of_range"


class CorrectionNotFoundError(AppError):
    """No correction with that id."""

    exit_code = ExitCode.USAGE
    http_status = HTTPStatus.NOT_FOUND
    code = "correction_not_found"


class StorageError(AppError):
    """The service's own storage (the corrections folder) cannot be written."""

    exit_code = ExitCode.INTERNAL
    http_status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "storage_unavailable"
