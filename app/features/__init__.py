"""Page -> named features."""

from app.features.extract import (
    FEATURE_NAMES,
    FEATURE_VERSION,
    OcrSettings,
    PageAnalysis,
    PageRow,
    analyse_page,
    featurise_page,
    page_features,
)

__all__ = [
    "FEATURE_NAMES",
    "FEATURE_VERSION",
    "OcrSettings",
    "PageAnalysis",
    "PageRow",
    "analyse_page",
    "featurise_page",
    "page_features",
]
