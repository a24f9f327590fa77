"""What classifying a document gives: page verdicts, document and model, as the API returns them.

These are the domain's result types: ``/classify``, the jobs layer (``app.jobs``) and the CLI's
JSON all write them; the HTTP layer (``app.api``) only declares them in its routes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from app.models.predict import PageVerdict

PageLabel = Literal["handwritten", "typed", "mixed", "empty"]
LineLabel = Literal["handwritten", "typed"]
DocLabel = Literal["handwritten", "typed", "mixed", "empty"]


class Probabilities(BaseModel):
    """Class probabilities of one page."""

    handwritten: float = Field(ge=0, le=1)
    typed: float = Field(ge=0, le=1)


class LineResult(BaseModel):
    """One text line: where it is and what it is."""

    bbox: tuple[int, int, int, int] = Field(
        description="[x0, y0, x1, y1] in the page's pixels (width x height above)"
    )
    label: LineLabel
    probability: float = Field(ge=0, le=1, description="probability that the line is handwritten")


class PageResult(BaseModel):
    """The verdict on one page."""

    page: int = Field(description="1-based page number", examples=[1])
    label: PageLabel = Field(
        description="mixed when handwritten content (beyond signatures and marks) sits with typed "
        "content on the page (see README)"
    )
    confidence: float = Field(
        ge=0, le=1, description="the page model's probability for its handwritten/typed verdict"
    )
    probabilities: Probabilities
    handwritten_share: float | None = Field(
        default=None, description="share of the text-line area whose lines are handwritten"
    )
    width: int = Field(description="page width in pixels as rendered/decoded")
    height: int
    dpi: float | None = Field(description="PDF render DPI or image DPI metadata, if known")
    orientation: int = Field(
        default=0,
        description="degrees (0, 90, 180, 270) the page as sent was turned counter-clockwise to "
        "be read upright",
    )
    skew: float = Field(
        default=0.0,
        description="degrees the upright page was then turned counter-clockwise to straighten its "
        "lines (0 below 0.5)",
    )
    elapsed_ms: float
    lines: list[LineResult] | None = Field(
        default=None, description="every text line, when the request asked lines=true"
    )
    thumbnail: str | None = Field(
        default=None, description="a small PNG of the page as a data: URL (thumbnails=true)"
    )

    @classmethod
    def from_verdict(
        cls, v: PageVerdict, *, lines: bool = False, thumbnail: str | None = None
    ) -> PageResult:
        """What /classify and /jobs answer for one page verdict."""
        return cls(
            page=v.page,
            label=v.label,
            confidence=round(v.confidence, 4),
            probabilities=Probabilities(
                handwritten=round(v.p_handwritten, 4), typed=round(1 - v.p_handwritten, 4)
            ),
            handwritten_share=(
                None if v.handwritten_share is None else round(v.handwritten_share, 4)
            ),
            lines=[
                LineResult(bbox=ln.bbox, label=ln.label, probability=round(ln.p_handwritten, 4))
                for ln in v.lines
            ]
            if lines
            else None,
            thumbnail=thumbnail,
            width=v.width,
            height=v.height,
            dpi=v.dpi,
            orientation=v.orientation,
            skew=round(v.skew, 2),
            elapsed_ms=round(v.elapsed_ms, 1),
        )


class DocumentInfo(BaseModel):
    """What was uploaded."""

    filename: str | None
    media_type: str
    sha256: str
    page_count: int


class ModelInfo(BaseModel):
    """The model that gave the verdict."""

    id: str
    algorithm: str
    feature_version: str


class ClassifyResponse(BaseModel):
    """Page-level verdicts for one document."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "document": {
                        "filename": "letter.pdf",
                        "media_type": "application/pdf",
                        "sha256": "9f2c…",
                        "page_count": 1,
                    },
                    "model": {"id": "default", "algorithm": "catboost", "feature_version": "2.5"},
                    "label": "typed",
                    "pages": [
                        {
                            "page": 1,
                            "label": "typed",
                            "confidence": 0.98,
                            "probabilities": {"handwritten": 0.02, "typed": 0.98},
                            "handwritten_share": 0.03,
                            "width": 1654,
                            "height": 2339,
                            "dpi": 200.0,
                            "elapsed_ms": 310.5,
                        }
                    ],
                    "elapsed_ms": 342.0,
                }
            ]
        }
    )

    document: DocumentInfo
    model: ModelInfo
    label: DocLabel = Field(description="mixed when the pages disagree")
    pages: list[PageResult]
    elapsed_ms: float
